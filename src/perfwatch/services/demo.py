"""`perfwatch demo`: a whole deployment in a folder, replayed through real cycles.

A simulated fleet provides training and reference data; a LightGBM pipeline is trained
and becomes version 1; then each day of production is dropped into the inbox as a file
(and the day's maintenance log into the labels inbox: the failures of the day, reported
as they happen, and the runs of a week ago that did not fail), and one real cycle runs,
exactly as the daemon would, followed by the retrain job when the policy says it is due
(the daemon runs that one in a worker process).
"""

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from perfwatch.config import ModelSettings, Settings, load_settings
from perfwatch.services.monitor import CycleReport, run_cycle
from perfwatch.store import db, reads
from perfwatch.store.tables import RetrainRun

if TYPE_CHECKING:
    import pandas as pd

    from perfwatch.services.alignment import Alignment

MODEL = "press-failure"
RUNS_PER_DAY = 2_000
HISTORY_DAYS, REFERENCE_DAYS = 56, 16
# a failure is reported the day it happens; "no failure" is known once a week has passed
# (the model's label_horizon); labels="delayed" sends every label a week late instead
LABEL_HORIZON_DAYS = 7
START = datetime(2026, 5, 4, tzinfo=UTC)  # production starts on a Monday

CONFIG = """\
# written by `perfwatch demo`; see config/perfwatch.example.toml for every key
store = "sqlite:///var/perfwatch.db"
data_dir = "var"

[[models]]
name = "{model}"
target = "failure"
features = ["air_temp", "process_temp", "rpm", "torque", "tool_wear", "product_type"]
categorical = ["product_type"]
chunk = "1D"
label_horizon = "7D"  # a run that has not failed within a week counts as "no failure"
metrics = ["roc_auc", "f1", "recall"]
inbox = "inbox/{model}"
labels_inbox = "labels/{model}"
initial_model = "models/{model}.joblib"
reference = "data/reference.parquet"
training_data = "data/train.parquet"

[models.retrain]
min_labeled_rows = 8000  # 4 days of this fleet's runs: a retrain learns the change itself
# rows from a naive generator (each column drawn on its own from the training data):
# checked before each retrain, and rejected (see services/synthetic.py)
extra_training_data = "data/synthetic.parquet"
"""


@dataclass
class DemoDay:
    day: date
    rows: int
    estimates: dict[str, float] = field(default_factory=dict)
    adjusted_auc: float | None = None  # the delay-adjusted ROC AUC (early labels), if made
    alert: bool = False
    quarantined: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    retrained: str | None = None  # what the retrain job made of the day, if it ran
    realized_chunk: date | None = None  # the newest chunk judged on labels
    realized: dict[str, float] = field(default_factory=dict)
    concept_drift: bool = False
    opened: list[str] = field(default_factory=list)  # alerts opened this day


@dataclass
class DemoResult:
    workspace: Path
    config: Path
    model: str
    engine: Engine
    production: "pd.DataFrame"  # the simulated rows, with their truth


def prepare_workspace(workspace: Path, *, seed: int) -> Path:
    """Simulate history, train and save the model, write the config; return its path."""
    import joblib

    from perfwatch.ml.training import train
    from perfwatch.simulate.files import write_frame
    from perfwatch.simulate.fleet import CATEGORICAL, FEATURES, TARGET, simulate_days

    history = simulate_days(
        start=START - timedelta(days=HISTORY_DAYS),
        days=HISTORY_DAYS,
        runs_per_day=RUNS_PER_DAY,
        machines=20,
        seed=seed,
        id_prefix="hist",
    )
    split = START - timedelta(days=REFERENCE_DAYS)
    training, reference = history[history.timestamp < split], history[history.timestamp >= split]
    write_frame(training, workspace / "data" / "train.parquet")
    write_frame(reference, workspace / "data" / "reference.parquet")
    write_frame(naive_synthetic(training, seed), workspace / "data" / "synthetic.parquet")
    model = train(training, features=FEATURES, categorical=CATEGORICAL, target=TARGET, seed=seed)
    (workspace / "models").mkdir(parents=True, exist_ok=True)
    joblib.dump(model, workspace / "models" / f"{MODEL}.joblib")
    config = workspace / "perfwatch.toml"
    config.write_text(CONFIG.format(model=MODEL), encoding="utf-8")
    return config


def naive_synthetic(rows: "pd.DataFrame", seed: int, size: int = 10_000) -> "pd.DataFrame":
    """What a naive generator makes: each column drawn on its own from `rows`, so every
    column looks right and no row does (process temperature no longer follows the air's,
    failures no longer follow wear and torque)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: rng.choice(rows[c].to_numpy(), size) for c in rows.columns})


def run_demo(
    *,
    workspace: Path | None,
    scenario: str,
    days: int,
    seed: int,
    defects: bool,
    on_day: Callable[[DemoDay], None],
    shift_day: int | None = None,
    labels: str = "arrival",
    on_check: "Callable[[Alignment], None] | None" = None,
) -> DemoResult:
    from perfwatch.services.retrain_job import run_retrain
    from perfwatch.simulate.files import drop_arrived_labels, drop_day, drop_labels
    from perfwatch.simulate.fleet import label_arrivals, simulate_days

    for name in ("perfwatch", "nannyml"):  # each day's line tells the story
        logging.getLogger(name).setLevel(logging.ERROR)
    folder = workspace or Path(tempfile.mkdtemp(prefix="perfwatch-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    config = prepare_workspace(folder, seed=seed)
    settings = load_settings(config)
    model = settings.model(MODEL)
    engine = db.open_engine(settings.store)
    db.migrate(engine)
    production = simulate_days(
        start=START,
        days=days,
        runs_per_day=RUNS_PER_DAY,
        machines=20,
        seed=seed + 1,
        scenario=scenario,
        shift_day=days // 2 if shift_day is None else shift_day,
        id_prefix="prod",
    )
    first_day = production[production.timestamp < START + timedelta(days=1)]
    checked = check_before_deployment(engine, settings, model, first_day, folder / "data")
    if on_check is not None:
        on_check(checked)
    horizon = timedelta(days=LABEL_HORIZON_DAYS)
    arrivals = label_arrivals(production, horizon=horizon, seed=seed)
    by_day = list(production.groupby(production.timestamp.dt.date))
    for index, (day, rows) in enumerate(by_day):
        drop_day(rows, index, day, model.inbox, defects=defects or scenario == "dirty", seed=seed)
        assert model.labels_inbox is not None  # the demo's config names it
        if labels == "arrival":
            drop_arrived_labels(arrivals, day, model.labels_inbox)
        elif index >= LABEL_HORIZON_DAYS:
            labeled_day, labeled_rows = by_day[index - LABEL_HORIZON_DAYS]
            drop_labels(labeled_rows, labeled_day, model.labels_inbox, delay=LABEL_HORIZON_DAYS)
        report = run_cycle(engine, settings, model)
        if report.error:
            raise RuntimeError(f"demo cycle failed on {day}: {report.error}")
        summary = _summary(engine, day, report)
        if report.retrain is not None and report.retrain.retrain:
            summary.retrained = _retrained(run_retrain(engine, settings, model))
        on_day(summary)
    return DemoResult(
        workspace=folder, config=config, model=MODEL, engine=engine, production=production
    )


def check_before_deployment(
    engine: Engine, settings: Settings, model: ModelSettings, sample: "pd.DataFrame", to: Path
) -> "Alignment":
    """What a team does before version 1 goes out: check it against a first production
    sample (`perfwatch check --sample`), and keep the check with the version."""
    from perfwatch.services.alignment import record_check
    from perfwatch.services.preflight import preflight
    from perfwatch.services.registry import ensure_initial_version, load_champion
    from perfwatch.simulate.files import write_frame

    ensure_initial_version(engine, settings, model)
    path = write_frame(sample.drop(columns=[model.target]), to / "first-day-sample.parquet")
    found = preflight(model, path).alignment
    assert found is not None, "the demo's sample is readable"
    record_check(engine, load_champion(engine, settings, model).version, path, found)
    return found


def after_retrain(engine: Engine, metric: str = "roc_auc") -> str:
    """What the loop paid off: the realized metric on the chunks after the last promotion
    (scored by the promoted version), against the bar, or why it cannot be said yet."""
    from perfwatch.services.status import history

    with engine.connect() as connection:
        model_id = reads.model_ids(connection)[MODEL]
        runs = reads.retrain_history(connection, model_id)
    promoted = [r for r in runs if r["decision"] == "promoted"]
    if not promoted:
        return "no retrain was promoted in this run"
    since = promoted[-1]["data_time"].isoformat()
    rows = history(engine, MODEL, metric)
    served = [r for r in rows if r["chunk_start"] >= since and r["realized"] is not None]
    newest = max(r["model_version"] for r in rows)
    if not served:
        return (
            f"v{newest} serves from {since[:10]}; no chunk of it is judged yet (its labels"
            f" are complete {LABEL_HORIZON_DAYS} days later: replay more --days)"
        )
    judged = {r["chunk_start"]: r for r in served}  # newest version's row per chunk
    realized = sum(r["realized"] for r in judged.values()) / len(judged)
    bar = served[-1]["bar"]
    verdict = (
        "back above the bar"
        if bar is None or realized >= bar
        else f"{bar - realized:.3f} under the bar"
    )
    return (
        f"after the retrain: realized {metric} {realized:.3f} on the {len(judged)} judged"
        f" chunk(s) since v{newest} took over on {since[:10]} (the bar: {_num(bar)}):"
        f" {verdict}"
    )


def _num(value: float | None) -> str:
    return "none" if value is None else f"{value:.3f}"


def _retrained(run: RetrainRun | None) -> str | None:
    import json

    if run is None:
        return None
    if run.status == "failed":
        return f"retrain failed: {run.error}"
    said = f"retrained, challenger {run.decision}: {json.loads(run.gate)['reason']}"
    extra = json.loads(run.manifest or "{}").get("extra_training_data")
    if extra is not None:
        said += f" · extra training rows {extra['decision']}: {extra['reason']}"
    return said


def _summary(engine: Engine, day: date, report: CycleReport) -> DemoDay:
    """The day's line: rows dropped, and the estimate of the newest complete chunk."""
    summary = DemoDay(
        day=day,
        rows=report.rows,
        quarantined=[f.file_name for f in report.files if f.status == "quarantined"],
        duplicates=[f.file_name for f in report.files if f.status == "duplicate"],
        opened=[f"{a.kind} {a.subject}" for a in report.alerts.opened],
    )
    with engine.connect() as connection:
        model_id = reads.model_ids(connection)[MODEL]
        latest = reads.latest_estimates(connection, model_id, complete=True)
        realized = reads.latest_realized(connection, model_id)
    summary.estimates = {e["metric"]: e["value"] for e in latest}
    summary.alert = any(e["alert"] for e in latest)
    auc = next((e for e in latest if e["metric"] == "roc_auc"), None)
    if auc is not None and auc["adjusted_reason"] is None:
        summary.adjusted_auc = auc["adjusted"]
    if realized:
        summary.realized_chunk = realized[0]["chunk_start"].date()
        summary.realized = {r["metric"]: r["value"] for r in realized}
        summary.concept_drift = any(r["concept_drift"] for r in realized)
    return summary

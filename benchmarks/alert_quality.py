"""How early, how true and how quiet are perfwatch's label-free signals? (issue 15)

Each scenario of the fleet simulator is replayed for DAYS days of production with the
change on SHIFT_DAY, for each seed, on the demo's deployment (a model trained on the
seed's own history): day by day, the day's batch and the day's maintenance log (the
failures reported that day, the runs of a week ago that did not fail), then one real
cycle, as the daemon runs them. Each chunk's figures are taken from the cycle that first
saw it complete (what a person reads the morning after); its realized value from the
end of the replay. Per scenario and estimator it prints:

- MAE: mean absolute error of the ROC AUC estimate against realized, per judged chunk;
- coverage: the share of judged chunks whose realized value lies in the estimate's band;
- first alert: chunks from the change to the first label-free alert of any kind (the
  estimator under its threshold on any metric, or an unreliable chunk: extrapolation),
  per seed ("none": none by the end);
- false alarms per 100 complete chunks before the change (all of `stable`).

Estimators: `cbpe` (CBPE alone), `adjusted` (the delay-adjusted estimate), `both` (either
alerts: `alert_on = "both"`). Run: `./dev bench-alerts [--seeds 1,2,3] [--days 90]`.
"""

import argparse
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

SCENARIOS = ("stable", "covariate_shift", "heat_wave", "concept_drift", "seasons", "census")
DAYS, SHIFT_DAY, SEEDS = 90, 30, (1, 2, 3)
ESTIMATORS = ("cbpe", "adjusted", "both", "weighted")
ALERT_ON = ("cbpe", "adjusted", "both")  # the estimators `alert_on` chooses from
UNCHANGED = ("stable", "seasons", "census")  # no change day (seasons, census: always)


@dataclass
class Morning:
    """A chunk as the cycle that first saw it complete left it (ROC AUC, and whether any
    metric alerted)."""

    cbpe: float
    cbpe_band: tuple[float | None, float | None]
    adjusted: float | None
    adjusted_band: tuple[float | None, float | None]
    alerts: dict[str, tuple[bool, bool | None]]  # per metric: CBPE's, the adjusted one's
    reliable: bool | None
    thresholds: dict[str, float | None]  # per metric, in force
    weighted: float | None = None  # the importance-weighted estimate (ml.weighted)
    weighted_band: tuple[float | None, float | None] = (None, None)
    weighted_alerts: dict[str, bool] = field(default_factory=dict)


@dataclass
class Replay:
    scenario: str
    seed: int
    mornings: dict[str, Morning] = field(default_factory=dict)  # by chunk start
    realized: dict[str, float] = field(default_factory=dict)
    change: str | None = None

    def mae(self, estimator: str) -> float | None:
        errors = [
            abs(value - self.realized[c])
            for c, m in self.mornings.items()
            if c in self.realized and (value := _value(m, estimator)) is not None
        ]
        return statistics.fmean(errors) if errors else None

    def coverage(self, estimator: str) -> float | None:
        inside = [
            low <= self.realized[c] <= high
            for c, m in self.mornings.items()
            if c in self.realized
            for low, high in [_band(m, estimator)]
            if low is not None and high is not None
        ]
        return statistics.fmean(inside) if inside else None

    def firing(self, estimator: str) -> set[str]:
        """The chunks that alerted on their morning, as `alert_on = estimator` decides
        (domain.thresholds.firing over the chunks in order), or were unreliable."""
        from perfwatch.domain.thresholds import firing

        chunks = sorted(self.mornings)
        fired = set()
        if estimator == "weighted":  # it alerts at once, as CBPE does
            fired = {c for c in chunks if any(self.mornings[c].weighted_alerts.values())}
        for metric in self.mornings[chunks[0]].alerts if chunks and estimator in ALERT_ON else []:
            chain = [self.mornings[c].alerts.get(metric, (False, None)) for c in chunks]
            fired |= {c for c, f in zip(chunks, firing(estimator, chain), strict=True) if f}
        return {c for c in chunks if c in fired or self.mornings[c].reliable is False}

    def first_alert(self, estimator: str) -> int | None:
        if self.change is None:
            return None
        after = sorted(c for c in self.mornings if c >= self.change)
        return next((i for i, c in enumerate(after) if c in self.firing(estimator)), None)

    def false_alarms(self, estimator: str) -> float | None:
        if self.scenario in ("seasons", "census"):
            return None
        before = [c for c in self.mornings if self.change is None or c < self.change]
        fired = self.firing(estimator)
        return 100 * sum(c in fired for c in before) / max(len(before), 1)


def _value(m: Morning, estimator: str) -> float | None:
    return {"cbpe": m.cbpe, "weighted": m.weighted}.get(estimator, m.adjusted)


def _band(m: Morning, estimator: str) -> tuple[float | None, float | None]:
    return {"cbpe": m.cbpe_band, "weighted": m.weighted_band}.get(estimator, m.adjusted_band)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    replays = []
    with tempfile.TemporaryDirectory(prefix="perfwatch-alerts-") as folder:
        for scenario in args.scenarios.split(","):
            for seed in seeds if scenario != "census" else seeds[:1]:  # real data: one run
                where = Path(folder) / f"{scenario}-{seed}"
                found = (
                    census(where)
                    if scenario == "census"
                    else replay(where, scenario, seed, args.days)
                )
                for estimator in ESTIMATORS:
                    print(_line(found, estimator), flush=True)
                replays.append(found)
    print()
    print(table(replays))


def replay(folder: Path, scenario: str, seed: int, days: int) -> Replay:
    """One scenario and seed, day by day through real cycles."""
    import logging

    from perfwatch.config import load_settings
    from perfwatch.services.demo import MODEL, START, prepare_workspace
    from perfwatch.services.monitor import run_cycle
    from perfwatch.services.status import history
    from perfwatch.simulate.files import drop_arrived_labels, write_frame
    from perfwatch.simulate.fleet import TARGET, label_arrivals, simulate_days
    from perfwatch.store import db

    logging.getLogger("perfwatch").setLevel(logging.ERROR)
    config = prepare_workspace(folder, seed=seed)
    settings = load_settings(config)
    model = settings.models[0]
    assert model.labels_inbox is not None
    shift_day = None if scenario in UNCHANGED else SHIFT_DAY
    fleet = simulate_days(
        start=START,
        days=days,
        runs_per_day=2_000,
        machines=20,
        seed=seed + 100,
        scenario=scenario,
        shift_day=shift_day,
    )
    arrivals = label_arrivals(fleet, horizon=timedelta(days=7), seed=seed)
    engine = db.open_engine(settings.store)
    db.migrate(engine)
    found = Replay(scenario, seed)
    if shift_day is not None:
        found.change = (START + timedelta(days=shift_day)).isoformat()
    for day, rows in fleet.groupby(fleet.timestamp.dt.date):
        write_frame(rows.drop(columns=[TARGET]), model.inbox / f"{day:%Y-%m-%d}.parquet")
        drop_arrived_labels(arrivals, day, model.labels_inbox)
        report = run_cycle(engine, settings, model)
        assert report.status == "ok", report.error
        _note_morning(found, history(engine, MODEL))
    for row in history(engine, MODEL):
        if row["metric"] == "roc_auc" and row["realized"] is not None:
            found.realized[row["chunk_start"]] = row["realized"]
    _weigh(found, engine, settings, fleet)
    return found


def _weigh(found: Replay, engine: Any, settings: Any, fleet: Any) -> None:
    """Each chunk's importance-weighted estimate, as `estimator = "weighted"` makes it (it
    needs no label: computed once, from the chunk's rows as the champion scores them)."""
    import joblib

    from perfwatch.ingest.batch import assign_chunks
    from perfwatch.ml import weighted
    from perfwatch.services.registry import cbpe_columns, load_champion
    from perfwatch.simulate.fleet import FEATURES

    model = settings.models[0]
    champion = load_champion(engine, settings, model)
    rows = fleet.copy()
    rows[model.score_column] = joblib.load(model.initial_model).predict_proba(rows[FEATURES])[:, 1]
    rows[model.prediction_column] = (rows[model.score_column] >= model.decision_threshold) * 1
    assign_chunks(rows, model.timestamp_column, model.chunking)
    estimates = weighted.estimate(
        champion.fitted,
        champion.contract.only(model.features),
        champion.reference_rows,
        rows,
        columns=cbpe_columns(model),
        metrics=model.metrics,
        chunking=model.chunking,
    )
    for e in estimates:
        morning = found.mornings.get(e.chunk_start.isoformat())
        if morning is None:
            continue
        if e.metric == "roc_auc":
            morning.weighted, morning.weighted_band = e.value, (e.lower, e.upper)
        threshold = morning.thresholds.get(e.metric)
        morning.weighted_alerts[e.metric] = threshold is not None and e.value < threshold


CENSUS_CONFIG = """\
store = "sqlite:///var/perfwatch.db"
data_dir = "var"

[[models]]
name = "employment"
target = "employed"
features = {features}
categorical = {categorical}
metrics = ["roc_auc", "f1", "recall"]
label_horizon = "7D"
inbox = "inbox"
labels_inbox = "labels"
initial_model = "model.joblib"
reference = "reference.parquet"
training_data = "train.parquet"
"""
CENSUS_DAYS = 10  # each survey year spread over 10 days from January 1st: a chunk a day


def census(folder: Path) -> Replay:
    """nannyml's bundled US census employment data (real): a bare LightGBM trained on
    2015, 2016-2018 as production, day by day; the labels arrive the PdM way, made up
    here (the census has no label times): "employed" within the day, "not employed" a week
    later. Realized values are the census's own targets."""
    import logging
    import warnings

    import joblib
    import lightgbm
    import nannyml as nml
    import numpy as np
    import pandas as pd

    from perfwatch.config import load_settings
    from perfwatch.services.monitor import run_cycle
    from perfwatch.services.status import history
    from perfwatch.simulate.files import write_frame
    from perfwatch.store import db

    logging.getLogger("perfwatch").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first, analysis, targets = nml.load_us_census_ma_employment_data()
    categorical = [c for c in first.columns if isinstance(first[c].dtype, pd.CategoricalDtype)]
    features = ["AGEP", *categorical]
    first = _spread(first, 2 * CENSUS_DAYS)
    split = first.timestamp.min() + pd.Timedelta(days=CENSUS_DAYS)
    training, reference = first[first.timestamp < split], first[first.timestamp >= split]
    classifier = lightgbm.LGBMClassifier(n_estimators=100, verbose=-1, random_state=0)
    classifier.fit(training[features], training["employed"])
    folder.mkdir(parents=True)
    columns = ["id", "timestamp", *features]
    training[[*columns, "employed"]].to_parquet(folder / "train.parquet")
    reference[[*columns, "employed"]].to_parquet(folder / "reference.parquet")
    joblib.dump(classifier, folder / "model.joblib")
    (folder / "perfwatch.toml").write_text(
        CENSUS_CONFIG.format(
            features=repr(features).replace("'", '"'),
            categorical=repr(categorical).replace("'", '"'),
        )
    )
    production = _spread(analysis, CENSUS_DAYS).merge(targets, on="id")
    rng = np.random.default_rng(0)
    end_of_day = production.timestamp.dt.floor("D") + pd.Timedelta(days=1, seconds=-1)
    reported = production.timestamp + (end_of_day - production.timestamp) * rng.uniform(
        0, 1, len(production)
    )
    production["label_time"] = reported.where(
        production["employed"] == 1, production.timestamp + pd.Timedelta(days=7)
    )
    settings = load_settings(folder / "perfwatch.toml")
    model = settings.models[0]
    assert model.labels_inbox is not None
    engine = db.open_engine(settings.store)
    db.migrate(engine)
    found = Replay("census", 0)
    batches = dict(tuple(production.groupby(production.timestamp.dt.date)))
    labels = dict(tuple(production.groupby(production.label_time.dt.date)))
    for day in sorted(set(batches) | set(labels)):
        if day in batches:
            write_frame(batches[day][columns], model.inbox / f"{day}.parquet")
        if day in labels:
            arrived = labels[day][["id", "employed", "label_time"]]
            write_frame(arrived, model.labels_inbox / f"labels-{day}.parquet")
        report = run_cycle(engine, settings, model)
        assert report.status == "ok", report.error
        if day in batches:
            _note_morning(found, history(engine, "employment"))
    for row in history(engine, "employment"):
        if row["metric"] == "roc_auc" and row["realized"] is not None:
            found.realized[row["chunk_start"]] = row["realized"]
    return found


def _spread(frame: "Any", days: int) -> "Any":
    """The census has a year, not a time: each year's rows spread evenly over `days` days
    from its January 1st, in their order."""
    import pandas as pd

    frame = frame.copy()
    position = frame.groupby("year").cumcount() / frame.groupby("year")["year"].transform("size")
    start = pd.to_datetime(frame["year"].astype(str) + "-01-01", utc=True)
    frame["timestamp"] = start + pd.to_timedelta(position * days * 86400, unit="s")
    return frame


def _note_morning(found: Replay, rows: list[dict[str, Any]]) -> None:
    """The newest complete chunk's figures, the first time a cycle sees it complete."""
    complete = [r for r in rows if not r["provisional"]]
    if not complete:
        return
    newest = max(r["chunk_start"] for r in complete)
    if newest in found.mornings:
        return
    chunk = [r for r in complete if r["chunk_start"] == newest]
    auc = next(r for r in chunk if r["metric"] == "roc_auc")
    found.mornings[newest] = Morning(
        cbpe=auc["estimated"],
        cbpe_band=(auc["lower"], auc["upper"]),
        adjusted=auc["adjusted"],
        adjusted_band=(auc["adjusted_lower"], auc["adjusted_upper"]),
        alerts={r["metric"]: (r["alert"], r["adjusted_alert"]) for r in chunk},
        thresholds={r["metric"]: r["threshold"] for r in chunk},
        reliable=auc["reliable"],
    )


def _line(r: Replay, estimator: str) -> str:
    first = r.first_alert(estimator)
    said = "–" if r.change is None else ("none" if first is None else f"{first} chunk(s)")
    return (
        f"{r.scenario:<16} seed {r.seed} {estimator:<8}: MAE {_num(r.mae(estimator))},"
        f" coverage {_share(r.coverage(estimator))}, first label-free alert after the change:"
        f" {said}, false alarms {_num(r.false_alarms(estimator), 1)} per 100 chunks"
    )


def table(replays: list[Replay]) -> str:
    """The README's table: per scenario and estimator, over the seeds."""
    lines = [
        "| scenario | estimator | MAE vs realized ROC AUC | band coverage"
        " | first label-free alert (chunks after the change, per seed)"
        " | false alarms / 100 chunks |",
        "|---|---|---|---|---|---|",
    ]
    for scenario in dict.fromkeys(r.scenario for r in replays):
        mine = [r for r in replays if r.scenario == scenario]
        for estimator in ESTIMATORS:
            firsts = [r.first_alert(estimator) for r in mine]
            said = ", ".join("none" if f is None else str(f) for f in firsts)
            lines.append(
                f"| {scenario} | {estimator}"
                f" | {_num(_mean([r.mae(estimator) for r in mine]))}"
                f" | {_share(_mean([r.coverage(estimator) for r in mine]))}"
                f" | {said if mine[0].change is not None else '–'}"
                f" | {_num(_mean([r.false_alarms(estimator) for r in mine]), 1)} |"
            )
    return "\n".join(lines)


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.fmean(known) if known else None


if __name__ == "__main__":
    sys.exit(main())

"""The Prometheus endpoint reads every model at once (store.fleet_reads); each figure it
serves is the one `perfwatch status` reports for that model (store.reads, model by
model), on a store of models in different states."""

from typing import Any

from perfwatch.services.exporter import ALERT_KINDS, StoreCollector
from perfwatch.services.monitor import run_cycle
from perfwatch.services.retrain_job import run_retrain
from perfwatch.services.status import model_status
from perfwatch.simulate.files import write_frame
from perfwatch.simulate.fleet import FEATURES, TARGET
from tests.workspace import Workspace, production

MODEL = """
[[models]]
name = "{name}"
target = "failure"
features = {features}
categorical = ["product_type"]
inbox = "{name}-inbox"
initial_model = "artifacts/model.joblib"
reference = "artifacts/reference.parquet"
"""


def served(engine: Any, names: list[str]) -> dict[tuple[str, tuple[str, ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in StoreCollector(engine, names).collect()
        for sample in family.samples
        if sample.labels  # the daemon's own gauges have none
    }


def as_status_says(engine: Any, names: list[str]) -> dict[tuple[str, tuple[str, ...]], float]:
    """What each gauge must hold, from `status`'s figures of each model."""
    from datetime import datetime

    expected: dict[tuple[str, tuple[str, ...]], float] = {}

    def put(name: str, value: float | None, **labels: str) -> None:
        if value is not None:
            expected[(f"perfwatch_{name}", tuple(sorted(labels.items())))] = value

    for item in model_status(engine, names):
        model = item["name"]
        estimate = item["latest_complete_estimate"] or item["latest_estimate"] or {}
        for metric, figures in estimate.get("metrics", {}).items():
            put("estimated_metric", figures["value"], model=model, metric=metric)
            put("metric_threshold", figures["threshold"], model=model, metric=metric)
            put("adjusted_metric", figures["adjusted"], model=model, metric=metric)
        complete = item["latest_complete_estimate"] or {}
        if complete.get("reliable") is not None:
            put("estimate_reliable", 1.0 if complete["reliable"] else 0.0, model=model)
            put("out_of_domain_share", complete["out_of_domain_share"], model=model)
        judged = item["latest_realized"]
        if judged:
            put("label_coverage", judged["label_coverage"], model=model)
            for metric, figures in judged["metrics"].items():
                put("realized_metric", figures["value"], model=model, metric=metric)
        for kind in ALERT_KINDS:
            count = sum(a["kind"] == kind for a in item["alerts"])
            put("open_alerts", count, model=model, kind=kind)
        last = item["last_cycle"]
        if last and last["finished_at"]:
            ended = datetime.fromisoformat(last["finished_at"])
            started = datetime.fromisoformat(last["started_at"])
            put("cycle_duration_seconds", (ended - started).total_seconds(), model=model)
            put("last_cycle_timestamp_seconds", ended.timestamp(), model=model)
            put("last_cycle_ok", 1.0 if last["status"] == "ok" else 0.0, model=model)
        put("champion_version", item["champion_version"], model=model)
        put("rows_ingested_total", item["rows_ingested"], model=model)
        put("batches_quarantined_total", item["batches_quarantined"], model=model)
    return expected


def test_a_scrape_serves_what_status_says_of_every_model(workspace: Workspace) -> None:
    features = "[" + ", ".join(f'"{f}"' for f in FEATURES) + "]"
    ws = workspace
    more = "".join(MODEL.format(name=name, features=features) for name in ("pump", "idle"))
    ws.config.write_text(ws.config.read_text() + more)
    engine = ws.engine()
    settings = ws.settings()
    press, pump = settings.model("press"), settings.model("pump")
    # press: shifted, labeled, alerting, retrained and promoted (version 2 estimates now)
    fleet = production(16, scenario="covariate_shift", shift_day=4)
    ws.drop_days(fleet)
    ws.drop_labels(fleet[["id", TARGET]].iloc[: 14 * 800], "log.parquet")
    assert run_cycle(engine, settings, press).status == "ok"
    run = run_retrain(engine, settings, press)
    assert run is not None and run.decision == "promoted"
    ws.drop_days(production(1, start_day=16, scenario="covariate_shift", shift_day=4))
    assert run_cycle(engine, settings, press).status == "ok"
    # pump: two stable days and a file it quarantines, no label
    inbox = ws.root / "pump-inbox"
    rows = production(2, seed=6).drop(columns=[TARGET])
    for day, batch in rows.groupby(rows.timestamp.dt.date):
        write_frame(batch, inbox / f"{day}.parquet")
    (inbox / "broken.csv").write_text("not,a\nbatch")
    assert run_cycle(engine, settings, pump).status == "ok"
    names = ["press", "pump", "idle"]
    expected = as_status_says(engine, names)
    assert expected == served(engine, names)
    kinds = {labels for name, labels in expected if name == "perfwatch_champion_version"}
    assert len(kinds) == 2, "press and pump have a champion, idle none yet"
    assert expected[("perfwatch_champion_version", (("model", "press"),))] == 2
    assert any(v for (name, _), v in expected.items() if name == "perfwatch_open_alerts")
    assert expected[("perfwatch_batches_quarantined_total", (("model", "pump"),))] == 1
    assert ("perfwatch_realized_metric", (("metric", "roc_auc"), ("model", "press"))) in expected

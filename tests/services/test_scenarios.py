"""Issue 3's acceptance on seeded simulator runs: what alerts, what does not, and when."""

from typing import Any

import pandas as pd
from sqlmodel import select

from perfwatch.domain.drift import MULTIVARIATE
from perfwatch.services.monitor import CycleReport, run_cycle
from perfwatch.services.report import report_data
from perfwatch.services.status import history, model_status
from perfwatch.simulate.fleet import TARGET
from perfwatch.store.db import transaction
from perfwatch.store.tables import Alert, ChunkDrift, Label, RetrainDecision
from tests.workspace import Workspace, production


def cycle(ws: Workspace, engine: Any) -> CycleReport:
    settings = ws.settings()
    report = run_cycle(engine, settings, settings.models[0])
    assert report.status == "ok", report.error
    return report


def open_alerts(engine: Any) -> set[tuple[str, str]]:
    with transaction(engine) as session:
        alerts = session.exec(select(Alert).where(Alert.closed_at.is_(None))).all()  # type: ignore[union-attr]
        return {(a.kind, a.subject) for a in alerts}


def days_of(frame: pd.DataFrame) -> list[pd.DataFrame]:
    return [rows for _, rows in frame.groupby(frame.timestamp.dt.date)]


def test_stable_90_days_raise_no_performance_or_concept_alert(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    fleet = production(90, seed=21)
    ws.drop_days(fleet)
    ws.drop_labels(fleet[["id", TARGET]], "labels.parquet")
    engine = ws.engine()
    report = cycle(ws, engine)
    assert report.judged.judged == 89, "the newest chunk is not complete yet"
    rows = history(engine, "press")
    complete = [r for r in rows if not r["provisional"]]
    assert len(complete) == 89 * 3
    assert not [r for r in complete if r["alert"]], "no estimate under its threshold"
    assert all(r["realized"] is not None for r in complete)
    assert not [r for r in rows if r["concept_drift"]], "no concept-drift verdict"
    kinds = {kind for kind, _ in open_alerts(engine)}
    assert not kinds & {"performance", "concept_drift", "feature_drift", "extrapolation"}
    assert len(complete) == sum(r["reliable"] is True for r in complete), "every chunk trusted"
    assert report.retrain.state == "healthy", "no retrain over 90 stable days"
    with transaction(engine) as session:
        assert session.exec(select(RetrainDecision)).first() is None
    with transaction(engine) as session:
        drift = session.exec(select(ChunkDrift)).all()
    assert len(drift) == 89 * 7, "6 features and the multivariate view, per complete chunk"
    assert sum(d.alert for d in drift) <= 0.01 * len(drift), "feature-drift alerts <= 1 %"


def test_covariate_shift_alerts_before_the_labels_arrive(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    fleet = production(14, scenario="covariate_shift", shift_day=5)
    ws.drop_days(fleet)
    engine = ws.engine()
    cycle(ws, engine)
    assert ("performance", "roc_auc") in open_alerts(engine)
    with transaction(engine) as session:
        assert session.exec(select(Label)).first() is None, "no label has arrived"
    drifting = {subject for kind, subject in open_alerts(engine) if kind == "feature_drift"}
    assert "tool_wear" in drifting, "the shifted input is named"
    assert drifting <= {"tool_wear", MULTIVARIATE}, "and only it (and the multivariate view)"
    # the model saw such runs and knows it is unsure there: CBPE's estimate holds
    assert ("extrapolation", "estimate") not in open_alerts(engine)
    assert all(r["reliable"] for r in history(engine, "press") if not r["provisional"])


def test_heat_wave_is_called_an_extrapolation_within_two_chunks(
    sqlite_workspace: Workspace,
) -> None:
    """The model is sure and wrong on temperatures it never saw: CBPE cannot see the drop,
    but it can see that its estimate has left the reference, a chunk after the change."""
    ws = sqlite_workspace
    shift_day = 5
    fleet = production(12, scenario="heat_wave", shift_day=shift_day)
    engine = ws.engine()
    opened_on = None
    for day, rows in enumerate(days_of(fleet)):
        ws.drop(rows, f"day-{day}.parquet")
        cycle(ws, engine)
        if ("extrapolation", "estimate") in open_alerts(engine) and opened_on is None:
            opened_on = day - 1  # the newest complete chunk is the day before
    assert opened_on is not None and shift_day <= opened_on <= shift_day + 1
    status = model_status(engine, ["press"])[0]
    assert status["state"] == "alert"
    complete = status["latest_complete_estimate"]
    assert complete["reliable"] is False and complete["out_of_domain_share"] > 0.5
    assert "'air_temp' above the reference's range" in complete["trust_reason"]
    [alert] = [a for a in status["alerts"] if a["kind"] == "extrapolation"]
    assert "is an extrapolation" in alert["message"] and "'air_temp'" in alert["message"]
    rows = [r for r in history(engine, "press") if r["metric"] == "roc_auc"]
    assert [r["reliable"] for r in rows[:shift_day]] == [True] * shift_day
    assert rows[-1]["reliable"] is None, "the incomplete chunk is not judged"
    data = report_data(engine, "press", {"press": ["roc_auc", "f1", "recall"]}, None)
    assert data.headline.startswith("The estimate cannot be trusted: ")
    assert any(r["reliable"] is False for r in data.estimates), "marked on the charts"


def test_concept_drift_verdict_fires_within_two_chunks_of_its_labels(
    sqlite_workspace: Workspace,
) -> None:
    ws = sqlite_workspace
    shift_day = 6
    fleet = production(16, scenario="concept_drift", shift_day=shift_day, runs_per_day=2_000)
    ws.drop_days(fleet)
    engine = ws.engine()
    cycle(ws, engine)
    estimates = [r for r in history(engine, "press") if not r["provisional"]]
    assert not [r for r in estimates if r["alert"]], "the estimate alone does not alert"
    assert not open_alerts(engine)

    opened_on = None
    for day, rows in enumerate(days_of(fleet)):
        ws.drop_labels(rows[["id", TARGET]], f"labels-{day}.parquet")
        cycle(ws, engine)
        drifting = {s for kind, s in open_alerts(engine) if kind == "concept_drift"}
        if drifting and opened_on is None:
            opened_on = day
    assert opened_on is not None and shift_day <= opened_on <= shift_day + 1
    judged = [r for r in history(engine, "press") if r["metric"] == "roc_auc"]
    before = [r for r in judged if r["chunk_start"] < judged[shift_day]["chunk_start"]]
    assert not any(r["concept_drift"] for r in before), "no verdict before the change"
    after = [r for r in judged[shift_day:] if r["realized"] is not None]
    assert len(after) >= 8 and all(r["realized"] < r["estimated"] for r in after)

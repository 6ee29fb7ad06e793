"""The retrain policy on a real store: recorded decisions, status, the dry-run manifest."""

from datetime import timedelta
from typing import Any

import pandas as pd
from sqlmodel import select

from perfwatch.services.monitor import CycleReport, run_cycle
from perfwatch.services.retrain_policy import evaluate
from perfwatch.services.status import model_status
from perfwatch.services.training_rows import retrain_manifest
from perfwatch.simulate.fleet import TARGET, label_arrivals
from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.tables import Batch, RetrainDecision, RetrainRun
from tests.workspace import Workspace, production


def cycle(ws: Workspace, engine: Any) -> CycleReport:
    settings = ws.settings()
    report = run_cycle(engine, settings, settings.models[0])
    assert report.status == "ok", report.error
    return report


def decisions(engine: Any) -> list[tuple[str, str | None]]:
    with transaction(engine) as session:
        rows = session.exec(select(RetrainDecision).order_by(RetrainDecision.id)).all()
        return [(d.state, d.trigger) for d in rows]


def shifted(ws: Workspace) -> pd.DataFrame:
    fleet = production(12, scenario="covariate_shift", shift_day=4)
    ws.drop_days(fleet)
    return fleet


def test_a_degraded_model_without_labels_waits_and_says_for_how_many(
    sqlite_workspace: Workspace,
) -> None:
    ws = sqlite_workspace
    engine = ws.engine()
    shifted(ws)
    report = cycle(ws, engine)
    assert report.retrain.state == "waiting_for_labels" and report.retrain.trigger == "estimate"
    retrain = model_status(engine, ["press"])[0]["retrain"]
    assert retrain["state"] == "waiting_for_labels"
    assert (
        "waiting for 1,000 more labeled rows (0 of 1,000 of the degraded chunks)"
        in (retrain["reason"])
    )
    cycle(ws, engine)
    assert decisions(engine) == [("waiting_for_labels", "estimate")], "recorded once"


def test_enough_labels_make_a_retrain_due_and_the_manifest_names_the_batches(
    workspace: Workspace,
) -> None:
    engine = workspace.engine()
    fleet = shifted(workspace)
    # labels of the degraded chunks too (the estimate alerts from day 7 or so)
    labeled = fleet[fleet.timestamp < fleet.timestamp.min() + pd.Timedelta(days=11)]
    workspace.drop_labels(labeled[["id", TARGET]], "log.parquet")
    report = cycle(workspace, engine)
    assert report.retrain.retrain and report.retrain.state == "due"
    assert model_status(engine, ["press"])[0]["retrain"]["trigger"] == "estimate"

    settings = workspace.settings()
    manifest = retrain_manifest(engine, settings, settings.models[0])
    assert sum(b["labeled_rows"] for b in manifest.batches) == len(labeled)
    held_out = manifest.holdout["rows"]
    assert 0 < held_out < len(labeled) and manifest.appended_rows == len(labeled) - held_out
    with transaction(engine) as session:
        stored = {b.content_hash: b.file_name for b in session.exec(select(Batch)).all()}
    assert {b["content_hash"]: b["file"] for b in manifest.batches} == {
        h: name for h, name in stored.items() if name < "2026-03-13"
    }, "exactly the batches whose rows are labeled, with their hashes"
    assert manifest.training_sha256 is not None


def test_concept_drift_waits_for_labels_of_the_changed_chunks(
    artifacts: Any, tmp_path: Any, sqlite_url: str
) -> None:
    """The verdict alerts at once; the retrain waits until the changed world has
    `min_labeled_rows` labeled rows of its own to learn from."""
    extra = "[models.retrain]\nmin_labeled_rows = 5000"
    ws = Workspace.create(tmp_path / "ws", artifacts, sqlite_url, extra=extra)
    engine = ws.engine()
    fleet = production(14, scenario="concept_drift", shift_day=4, runs_per_day=2_000)
    ws.drop_days(fleet)
    cycle(ws, engine)
    states = []
    for day, rows in fleet.groupby(fleet.timestamp.dt.date):
        ws.drop_labels(rows[["id", TARGET]], f"labels-{day}.parquet")
        report = cycle(ws, engine)
        states.append((report.retrain.state, report.retrain.trigger, report.retrain.reason))
    drifted = [s for s in states if s[1] == "concept_drift"]
    waiting, due = drifted[0], next(s for s in drifted if s[0] == "due")
    assert waiting[0] == "waiting_for_labels", states
    assert "of the chunks out of the band" in waiting[2]
    assert drifted.index(due) >= 1, "due only once more changed chunks were labeled"


def test_a_stable_fleet_needs_no_retrain(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    engine = ws.engine()
    fleet = production(8)
    ws.drop_days(fleet)
    ws.drop_labels(fleet[["id", TARGET]], "log.parquet")
    report = cycle(ws, engine)
    assert report.retrain.state == "healthy"
    assert decisions(engine) == []
    assert model_status(engine, ["press"])[0]["retrain"]["state"] == "healthy"


def test_a_retrain_learns_only_from_chunks_whose_labels_are_final(
    artifacts: Any, tmp_path: Any, sqlite_url: str
) -> None:
    """Labels the predictive-maintenance way (a failure the same day, "no failure" after
    the 3-day label horizon): the chunks inside the horizon hold their failures only. A
    retrain must not learn from them, nor count them as labeled rows."""
    ws = Workspace.create(tmp_path, artifacts, sqlite_url, extra='label_horizon = "3D"')
    engine = ws.engine()
    fleet = production(12)
    ws.drop_days(fleet)
    arrivals = label_arrivals(fleet, horizon=timedelta(days=3), seed=1)
    known = arrivals[arrivals.label_time < fleet.timestamp.max()]
    ws.drop_labels(known, "log.parquet")
    cycle(ws, engine)

    run_day = fleet.set_index("id").timestamp.dt.day - fleet.timestamp.min().day
    day_of = known["id"].map(run_day)
    assert set(known.loc[day_of >= 9, TARGET]) == {1}, "inside the horizon: failures only"
    settings = ws.settings()
    manifest = retrain_manifest(engine, settings, settings.models[0], force=True)
    final = known[day_of <= 7]  # chunk end + 3 days is past the newest row
    assert sum(b["labeled_rows"] for b in manifest.batches) == len(final) < len(known)
    assert max(b["file"] for b in manifest.batches) == "2026-03-09.parquet"
    with transaction(engine) as session:
        counted = queries.labeled_since(
            session=session, model_id=1, since=fleet.timestamp.min().floor("D").to_pydatetime()
        )
    assert counted == len(final)


def test_labels_of_chunks_before_a_retrained_champion_do_not_call_for_another(
    sqlite_workspace: Workspace,
) -> None:
    """Concept drift confirmed on chunks version 1 served: a retrain is due. Once a
    retrained champion serves from after those chunks, their verdicts judge the old
    version, not it: no retrain is due on them (until its own chunks are judged)."""
    ws = sqlite_workspace
    engine = ws.engine()
    fleet = production(14, scenario="concept_drift", shift_day=4, runs_per_day=2_000)
    ws.drop_days(fleet)
    ws.drop_labels(fleet[["id", TARGET]], "log.parquet")
    model = ws.settings().models[0]
    assert cycle(ws, engine).retrain.trigger == "concept_drift"

    def trigger_when_served_from(day: int) -> str | None:
        with transaction(engine) as session:
            champion = queries.champion(session=session, model_id=1)
            run = session.exec(select(RetrainRun)).first() or RetrainRun(
                model_id=1, parent_version_id=champion.id, version_id=champion.id
            )
            run.data_time = (
                fleet.timestamp.min().floor("D") + pd.Timedelta(days=day)
            ).to_pydatetime()
            run.status, run.started_at = "finished", run.data_time  # no cooldown in the way
            session.add(run)
        decision = evaluate(engine, model, 1, record=False)
        assert decision is not None
        return decision.trigger

    assert trigger_when_served_from(14) is None, "every judged chunk is the old version's"
    assert trigger_when_served_from(6) == "concept_drift", "its own chunks drift too"

"""The delay-adjusted estimate through real cycles: early, one-sided labels (failures
reported the day they happen, "no failure" after a week) and what it makes of them."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from perfwatch.services.monitor import run_cycle
from perfwatch.services.status import history, model_status
from perfwatch.simulate.files import drop_arrived_labels
from perfwatch.simulate.fleet import TARGET, label_arrivals
from tests.workspace import Workspace, production

WEEK = timedelta(days=7)


@pytest.fixture
def ws(tmp_path: Path, artifacts: Path, sqlite_url: str) -> Workspace:
    return Workspace.create(tmp_path / "ws", artifacts, sqlite_url, extra='label_horizon = "7D"')


def replay(
    ws: Workspace, fleet: pd.DataFrame, arrivals: pd.DataFrame, times: bool = True
) -> list[Any]:
    """Day by day: the day's batch and the labels that arrived that day (their files with
    the label times, or without), then a cycle; the open alerts after each."""
    engine, settings = ws.engine(), ws.settings()
    model = settings.models[0]
    assert model.labels_inbox is not None
    seen = []
    for day, rows in fleet.groupby(fleet.timestamp.dt.date):
        ws.drop(rows.drop(columns=[TARGET]), f"{day}.parquet")
        if times:
            drop_arrived_labels(arrivals, day, model.labels_inbox)
        elif (arrived := arrivals[arrivals.label_time.dt.date == day]).size:
            ws.drop_labels(arrived.drop(columns=["label_time"]), f"labels-{day}.parquet")
        report = run_cycle(engine, settings, model)
        assert report.status == "ok", report.error
        status = model_status(engine, ["press"])[0]
        seen.append({(a["kind"], a["subject"]) for a in status["alerts"]})
    return seen


def newest_complete(ws: Workspace) -> dict[str, Any]:
    estimate = model_status(ws.engine(), ["press"])[0]["latest_complete_estimate"]
    assert estimate is not None
    return estimate["metrics"]


def test_a_new_supplier_is_called_the_chunk_after_it_came_before_labels_mature(
    ws: Workspace,
) -> None:
    shift_day = 12
    fleet = production(17, scenario="concept_drift", shift_day=shift_day, runs_per_day=1500)
    seen = replay(ws, fleet, label_arrivals(fleet, horizon=WEEK, seed=1))
    # on day d the newest complete chunk is day d - 1
    opened = next(d - 1 for d, alerts in enumerate(seen) if ("performance", "roc_auc") in alerts)
    assert shift_day <= opened <= shift_day + 1, "within 2 chunks of the change"
    rows = [r for r in history(ws.engine(), "press") if r["metric"] == "roc_auc"]
    changed = [r for r in rows if r["chunk_start"] >= rows[shift_day]["chunk_start"]]
    assert all(r["realized"] is None for r in changed), "no label has matured yet"
    complete = [r for r in changed if not r["provisional"]]
    assert all(r["adjusted"] < r["estimated"] - 0.03 for r in complete), "CBPE stays flat"
    roc_auc = newest_complete(ws)["roc_auc"]
    assert roc_auc["adjusted_reason"] is None and roc_auc["adjusted_labels"] > 0
    assert not roc_auc["alert"], "CBPE alone does not alert"


def test_on_a_stable_fleet_the_adjusted_estimate_meets_realized_and_stays_quiet(
    ws: Workspace,
) -> None:
    fleet = production(16, runs_per_day=1500)
    seen = replay(ws, fleet, label_arrivals(fleet, horizon=WEEK, seed=2))
    assert not any(kind == "performance" for alerts in seen for kind, _ in alerts)
    rows = [r for r in history(ws.engine(), "press") if r["metric"] == "roc_auc"]
    judged = [r for r in rows if r["realized"] is not None and r["adjusted"] is not None]
    assert judged, "some chunks were adjusted, then judged"
    worst = max(abs(r["adjusted"] - r["realized"]) for r in judged)
    assert worst < 0.02
    # the newest complete chunk's labels are its failures, every one, and nothing else yet
    newest = newest_complete(ws)["roc_auc"]
    day = fleet[fleet.timestamp.dt.date == fleet.timestamp.dt.date.max() - timedelta(days=1)]
    assert newest["adjusted_labels"] == day[TARGET].sum() > 0
    assert newest["adjusted_reason"] is None


def test_before_any_chunk_is_mature_the_adjusted_estimate_is_cbpes_with_the_reason(
    ws: Workspace,
) -> None:
    fleet = production(4)
    replay(ws, fleet, label_arrivals(fleet, horizon=WEEK, seed=3))
    for figures in newest_complete(ws).values():
        assert figures["adjusted"] == figures["value"]
        assert figures["adjusted_reason"] == "no mature chunk yet to learn how labels arrive"


def test_labels_without_label_times_leave_cbpes_estimate_and_say_why(ws: Workspace) -> None:
    """A maintenance log that gives outcomes, not when they became known: how labels
    arrive cannot be learnt."""
    fleet = production(12)
    replay(ws, fleet, label_arrivals(fleet, horizon=WEEK, seed=4), times=False)
    for figures in newest_complete(ws).values():
        assert figures["adjusted"] == figures["value"]
        assert figures["adjusted_reason"] == "the mature chunks' labels carry no 'label_time'"


def test_labels_that_all_arrive_at_once_are_counted_as_they_are(ws: Workspace) -> None:
    """Every label a week late, all at once (the demo's old mode): nothing is early, so
    the chunks still waiting keep CBPE's estimate, and nothing alerts on that."""
    fleet = production(14)
    late = fleet[["id", TARGET]].assign(label_time=fleet.timestamp + WEEK)
    seen = replay(ws, fleet, late)
    assert not any(kind == "performance" for alerts in seen for kind, _ in alerts)
    for figures in newest_complete(ws).values():
        assert figures["adjusted_reason"] == "no label of the chunk has arrived yet"


def test_a_chunk_with_no_label_yet_keeps_cbpes_estimate(ws: Workspace) -> None:
    fleet = production(12)
    arrivals = label_arrivals(fleet, horizon=WEEK, seed=5)
    newest_day = fleet.timestamp.max().normalize() - timedelta(days=1)
    silent = arrivals[fleet.timestamp < newest_day]  # the last complete day's labels lost
    replay(ws, fleet, silent)
    for figures in newest_complete(ws).values():
        assert figures["adjusted_reason"] == "no label of the chunk has arrived yet"
        assert figures["adjusted"] == figures["value"]


def test_after_a_pause_longer_than_the_label_window_it_learns_from_before_it(
    ws: Workspace,
) -> None:
    """A line stopped for four months: how labels arrive is learnt from its last mature
    chunks, however old (the census comes a year apart)."""
    before = production(10)
    after = production(4, start_day=130, seed=6)
    replay(ws, before, label_arrivals(before, horizon=WEEK, seed=7))
    replay(ws, after, label_arrivals(after, horizon=WEEK, seed=8))
    for figures in newest_complete(ws).values():
        assert figures["adjusted_reason"] is None and figures["adjusted_labels"] > 0


@pytest.mark.parametrize("alert_on", ["cbpe", "both"])
def test_the_retrain_policy_counts_the_estimate_alert_on_chooses(
    tmp_path: Path, artifacts: Path, sqlite_url: str, alert_on: str
) -> None:
    extra = f'label_horizon = "7D"\nalert_on = "{alert_on}"'
    ws = Workspace.create(tmp_path / "ws", artifacts, sqlite_url, extra=extra)
    fleet = production(15, scenario="concept_drift", shift_day=10, runs_per_day=1500)
    replay(ws, fleet, label_arrivals(fleet, horizon=WEEK, seed=9))
    retrain = model_status(ws.engine(), ["press"])[0]["retrain"]
    if alert_on == "cbpe":  # CBPE's estimate stays flat, and no label has matured
        assert retrain["state"] == "healthy"
    else:
        assert retrain["trigger"] == "estimate", retrain


ONE_FEATURE = """\
store = "{store}"
data_dir = "var"

[[models]]
name = "press"
target = "failure"
features = ["process_temp"]
metrics = ["roc_auc"]  # alone, it never predicts a failure: F1 and recall say nothing
label_horizon = "7D"
inbox = "inbox"
labels_inbox = "labels"
initial_model = "model.joblib"
reference = "reference.parquet"
training_data = "train.parquet"
"""


def test_a_model_with_one_feature_gets_every_figure(tmp_path: Path, sqlite_url: str) -> None:
    """A bare LightGBM on process temperature alone, through a heat wave: trust (one
    feature's support and classifier), drift (PCA of one column) and the adjusted
    estimate all hold."""
    import joblib
    import lightgbm

    history = production(20, start_day=-20, seed=10)
    training, reference = history.iloc[:8000], history.iloc[8000:]
    model = lightgbm.LGBMClassifier(n_estimators=50, verbose=-1, random_state=0)
    model.fit(training[["process_temp"]], training[TARGET])
    joblib.dump(model, tmp_path / "model.joblib")
    training.to_parquet(tmp_path / "train.parquet")
    reference.to_parquet(tmp_path / "reference.parquet")
    (tmp_path / "perfwatch.toml").write_text(ONE_FEATURE.format(store=sqlite_url))
    ws = Workspace(root=tmp_path, config=tmp_path / "perfwatch.toml", store=sqlite_url)
    fleet = production(14, scenario="heat_wave", shift_day=9)
    seen = replay(ws, fleet, label_arrivals(fleet, horizon=WEEK, seed=11))
    assert ("extrapolation", "estimate") in seen[-1]
    status = model_status(ws.engine(), ["press"])[0]
    complete = status["latest_complete_estimate"]
    assert complete["reliable"] is False and "'process_temp' above" in complete["trust_reason"]
    assert complete["metrics"]["roc_auc"]["adjusted_reason"] is None
    assert status["feature_drift"] is not None

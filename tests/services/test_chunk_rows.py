"""`chunk_rows = N`: chunks of N rows in timestamp order, every estimate, realized metric,
drift figure and alert per such chunk, and equal to nannyml's own size-based chunks."""

import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import pytest

from perfwatch.services.monitor import CycleReport, run_cycle
from perfwatch.services.status import history, model_status
from perfwatch.simulate.fleet import FEATURES, TARGET
from tests.workspace import Workspace, production

METRICS = ["roc_auc", "f1", "recall"]
SIZE = 500


def cycle(ws: Workspace, engine: Any) -> CycleReport:
    settings = ws.settings()
    report = run_cycle(engine, settings, settings.models[0])
    assert report.status == "ok", report.error
    return report


@pytest.fixture
def ws(tmp_path: Path, artifacts: Path, sqlite_url: str) -> Workspace:
    return Workspace.create(tmp_path / "ws", artifacts, sqlite_url, f"chunk_rows = {SIZE}")


def test_chunks_of_n_rows_equal_nannyml_size_based_chunks(ws: Workspace) -> None:
    engine = ws.engine()
    fleet = production(6)  # 4,800 rows: 9 chunks of 500 and one of 300, still open
    days = [rows for _, rows in fleet.groupby(fleet.timestamp.dt.date)]
    ws.drop_days(pd.concat(days[:3]))
    cycle(ws, engine)
    ws.drop_days(pd.concat(days[3:]))
    ws.drop_labels(fleet[["id", TARGET]], "log.parquet")
    cycle(ws, engine)

    rows = history(engine, "press", "roc_auc")
    assert [r["rows"] for r in rows] == [SIZE] * 9 + [300]
    assert [r["provisional"] for r in rows] == [False] * 9 + [True]
    estimates, realized = nannyml_figures(ws, fleet)
    for metric in METRICS:
        ours = [r for r in history(engine, "press", metric) if not r["provisional"]]
        assert [r["estimated"] for r in ours] == pytest.approx(
            estimates[(metric, "value")].tolist()[:9], abs=1e-9
        ), metric
        assert [r["realized"] for r in ours] == pytest.approx(
            realized[(metric, "value")].tolist()[:9], abs=1e-9
        ), metric
    starts = [r["chunk_start"] for r in rows]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    status = model_status(engine, ["press"])[0]
    assert status["latest_realized"]["chunk_start"] == rows[8]["chunk_start"]
    assert status["labels"]["held"] == 0
    drift = status["feature_drift"]  # measured per row chunk too, the newest complete one
    assert drift["chunk_start"] == rows[8]["chunk_start"] and len(drift["features"]) == 7

    ws.drop(days[2], "day-2-again.csv")  # a re-sent file takes no place in a chunk
    assert cycle(ws, engine).rows == 0
    assert [r["rows"] for r in history(engine, "press", "roc_auc")] == [SIZE] * 9 + [300]


def nannyml_figures(ws: Workspace, fleet: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """nannyml's CBPE and PerformanceCalculator with chunk_size, on the same rows in
    timestamp order."""
    import nannyml as nml

    model = joblib.load(ws.root / "artifacts" / "model.joblib")
    reference = pd.read_parquet(ws.root / "artifacts" / "reference.parquet")
    frames = []
    for frame in (reference, fleet.copy()):
        frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
        frame["y_pred_proba"] = model.predict_proba(frame[FEATURES])[:, 1]
        frame["y_pred"] = (frame["y_pred_proba"] >= 0.5).astype(int)
        frames.append(frame)
    options = {
        "problem_type": "classification_binary",
        "y_pred_proba": "y_pred_proba",
        "y_pred": "y_pred",
        "y_true": TARGET,
        "timestamp_column_name": "timestamp",
        "metrics": METRICS,
        "chunk_size": SIZE,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimates = nml.CBPE(**options).fit(frames[0]).estimate(frames[1].drop(columns=TARGET))
        realized = nml.PerformanceCalculator(**options).fit(frames[0]).calculate(frames[1])
    return (
        estimates.filter(period="analysis").to_df(),
        realized.filter(period="analysis").to_df(),
    )


def test_a_yearly_replay_in_row_chunks_holds_no_label_of_a_stored_row(ws: Workspace) -> None:
    """A year, a file a month with the previous month's labels: every label matched, every
    complete chunk judged."""
    engine = ws.engine()
    year = production(364, runs_per_day=20)
    months = [rows for _, rows in year.groupby([year.timestamp.dt.year, year.timestamp.dt.month])]
    for index, month in enumerate(months):
        ws.drop(month, f"month-{index:02d}.parquet")
        if index:
            ws.drop_labels(months[index - 1][["id", TARGET]], f"labels-{index:02d}.parquet")
        cycle(ws, engine)
    labeled = len(pd.concat(months[:-1]))
    labels = model_status(engine, ["press"])[0]["labels"]
    assert labels["held"] == 0 and labels["stored"] == labeled
    rows = history(engine, "press", "roc_auc")
    assert sum(r["rows"] for r in rows) == len(year)
    assert all(r["rows"] == SIZE for r in rows[:-1])
    judged = [r for r in rows if r["realized"] is not None]
    assert len(judged) == labeled // SIZE  # every complete chunk whose rows are all labeled
    span = pd.Timestamp(rows[-1]["chunk_start"]) - pd.Timestamp(rows[0]["chunk_start"])
    assert span > timedelta(days=300), "the window bounds cost, not which labels match"

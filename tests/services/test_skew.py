"""Training-serving skew: served scores that the champion would not have given."""

from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from perfwatch.services.monitor import CycleReport, run_cycle
from perfwatch.services.status import model_status
from perfwatch.simulate.fleet import FEATURES
from tests.workspace import Workspace, production


def cycle(ws: Workspace, engine: Any) -> CycleReport:
    settings = ws.settings()
    report = run_cycle(engine, settings, settings.models[0])
    assert report.status == "ok", report.error
    return report


def served(ws: Workspace, rows: pd.DataFrame, *, forgot_scaler: bool = False) -> pd.DataFrame:
    """Rows scored by the model as a server would; optionally with torque in the wrong unit."""
    model = joblib.load(ws.root / "artifacts" / "model.joblib")
    inputs = rows[FEATURES].copy()
    if forgot_scaler:
        inputs["torque"] = inputs["torque"] * 0.1  # kNm*100 instead of Nm: a serving bug
    scored = rows.copy()
    scored["y_pred_proba"] = model.predict_proba(inputs)[:, 1]
    scored["y_pred"] = (scored["y_pred_proba"] >= 0.5).astype(int)
    return scored


def kinds(engine: Any) -> set[tuple[str, str]]:
    return {(a["kind"], a["subject"]) for a in model_status(engine, ["press"])[0]["alerts"]}


def test_scores_served_with_a_broken_transform_raise_a_skew_alert(
    tmp_path: Path, artifacts: Path, store_url: str
) -> None:
    workspace = Workspace.create(tmp_path / "ws", artifacts, store_url, 'skew_every = "1D"')
    fleet = production(4)
    days = [rows for _, rows in fleet.groupby(fleet.timestamp.dt.date)]
    engine = workspace.engine()
    workspace.drop(served(workspace, days[0]), "day0.parquet")
    report = cycle(workspace, engine)
    assert report.skew.checked == 500 and report.skew.mismatched == 0, "the same model agrees"
    assert ("skew", "y_pred_proba") not in kinds(engine)

    workspace.drop(served(workspace, days[1], forgot_scaler=True), "day1.parquet")
    report = cycle(workspace, engine)
    assert report.skew.mismatched > 0.5 * report.skew.checked
    assert ("skew", "y_pred_proba") in kinds(engine)
    message = next(a["message"] for a in model_status(engine, ["press"])[0]["alerts"])
    assert "forgotten scaler" in message

    for index in (2, 3):  # two clean cycles close it
        workspace.drop(served(workspace, days[index]), f"day{index}.parquet")
        cycle(workspace, engine)
    assert ("skew", "y_pred_proba") not in kinds(engine)


def test_rows_without_served_scores_are_not_checked(sqlite_workspace: Workspace) -> None:
    sqlite_workspace.drop_days(production(2))  # no score columns: perfwatch scores them
    report = cycle(sqlite_workspace, sqlite_workspace.engine())
    assert report.skew is None


def test_re_scoring_runs_when_due_not_every_cycle(sqlite_workspace: Workspace) -> None:
    """Re-scoring loads the champion (seconds in a cold `run --once`): it runs for a
    champion not checked yet, once per `skew_every` window of data time (by default the
    week, from Monday: production starts on one), and whenever some rows came without
    scores (the champion is loaded to score them anyway)."""
    from perfwatch.services.registry import register_version

    ws = sqlite_workspace
    fleet = production(12)
    days = [rows for _, rows in fleet.groupby(fleet.timestamp.dt.date)]
    engine = ws.engine()

    def checked(day: int, rows: pd.DataFrame | None = None) -> bool:
        ws.drop(served(ws, days[day]) if rows is None else rows, f"day{day}.parquet")
        return cycle(ws, engine).skew is not None

    assert checked(0), "version 1 has not been checked"
    assert not checked(1) and not checked(6), "the same week of data"
    assert checked(7), "the next week's first rows"
    assert not checked(9)
    unscored = served(ws, days[10])
    unscored.loc[unscored.index[:10], ["y_pred_proba", "y_pred"]] = None
    assert checked(10, unscored), "some rows needed the champion anyway"
    settings = ws.settings()
    model = settings.models[0]
    assert model.initial_model is not None and model.reference is not None
    register_version(
        engine,
        settings,
        model,
        artifact=model.initial_model,
        reference=model.reference,
        training_data=None,
        source="register",
    )
    assert checked(11), "a new champion is checked on its first served rows"

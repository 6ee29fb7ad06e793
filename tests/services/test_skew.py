"""Training-serving skew: served scores that the champion would not have given."""

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


def test_scores_served_with_a_broken_transform_raise_a_skew_alert(workspace: Workspace) -> None:
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

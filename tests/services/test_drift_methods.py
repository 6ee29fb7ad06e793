"""`[models.drift]`: the drift tests teams already run, through real cycles. On the fleet
simulator each method set keeps quiet on stable days and names the shifted inputs of a
covariate shift, with the test's corrected p-value; on nannyml's census data the tests
run on a model we did not make and show what real survey years do to them."""

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from perfwatch.config import load_settings
from perfwatch.domain.drift import MULTIVARIATE
from perfwatch.render import status_screen
from perfwatch.services.monitor import run_cycle
from perfwatch.services.status import model_status
from perfwatch.store import db
from perfwatch.store.db import transaction
from perfwatch.store.tables import ChunkDrift
from tests.services.test_real_data import census, census_deployment  # noqa: F401  (a fixture)
from tests.services.test_scenarios import cycle, open_alerts
from tests.workspace import Workspace, production

SETS = {
    "ks-chi2-mmd": ("ks", "chi2", "mmd"),
    "wasserstein-chi2-classifier": ("wasserstein", "chi2", "classifier"),
}


def drift_config(methods: tuple[str, str, str]) -> str:
    continuous, categorical, multivariate = methods
    return (
        f'[models.drift]\ncontinuous = "{continuous}"\ncategorical = "{categorical}"\n'
        f'multivariate = "{multivariate}"\n'
    )


def drift_rows(engine: Any) -> list[ChunkDrift]:
    with transaction(engine) as session:
        return list(session.exec(select(ChunkDrift)).all())


@pytest.mark.parametrize("name", list(SETS))
def test_each_method_set_is_quiet_when_stable_and_names_a_shifted_input(
    tmp_path: Path, artifacts: Path, sqlite_url: str, name: str
) -> None:
    continuous, categorical, multivariate = SETS[name]
    ws = Workspace.create(tmp_path / "ws", artifacts, sqlite_url, drift_config(SETS[name]))
    fleet = production(14, scenario="covariate_shift", shift_day=7)
    days = [rows for _, rows in fleet.groupby(fleet.timestamp.dt.date)]
    engine = ws.engine()
    for day in days[:7]:
        ws.drop_days(day)
    cycle(ws, engine)
    stable = drift_rows(engine)
    assert len(stable) == 6 * 7, "6 complete chunks: 6 features and all of them together"
    methods = {d.feature: d.method for d in stable}
    assert methods["air_temp"] == continuous and methods["product_type"] == categorical
    assert methods[MULTIVARIATE] == multivariate
    assert not [d for d in stable if d.alert], "no confirmed drift on stable days"
    tested = [d for d in stable if d.method in ("ks", "chi2", "classifier", "mmd")]
    assert tested and all(d.p_value is not None and 0 <= d.p_value <= 1 for d in tested)

    for day in days[7:]:
        ws.drop_days(day)
    cycle(ws, engine)
    drifting = {subject for kind, subject in open_alerts(engine) if kind == "feature_drift"}
    assert "tool_wear" in drifting, "the shifted input is named"
    assert drifting <= {"tool_wear", MULTIVARIATE, "torque"}, drifting
    [status] = model_status(engine, ["press"])
    figures = status["feature_drift"]["features"]["tool_wear"]
    assert figures["alert"] and figures["method"] == continuous
    if continuous == "ks":
        assert figures["p_value"] < 0.05
        assert "tool_wear ks " in _text(status_screen(status))


def _text(renderable: Any) -> str:
    from rich.console import Console

    console = Console(record=True, width=300)
    console.print(renderable)
    return console.export_text()


@pytest.mark.slow  # nannyml's bundled census data and a LightGBM fit on it
def test_census_survey_years_under_the_tests_and_under_jensen_shannon(
    tmp_path: Path,
    census: dict[str, Any],  # noqa: F811
) -> None:
    """2016-2018's surveys against 2015's, chunk by chunk: with thousands of rows a chunk
    the chi-squared tests are certain of differences too small to matter (most
    categorical features, confirmed), while Jensen-Shannon with its effect floor confirms
    the one that moved most (RELP), and KS's floor keeps age quiet; every tested figure
    carries its corrected p-value."""
    features = census["features"]
    columns = ["id", "timestamp", *features]
    confirmed = {}
    for name, methods in {"tests": ("ks", "chi2", "classifier"), "nannyml": None}.items():
        folder = tmp_path / name
        extra = drift_config(methods) if methods else ""
        config = census_deployment(folder, census, ["roc_auc"], extra)
        for year, rows in census["production"].groupby("year"):
            rows[columns].to_parquet(folder / "inbox" / f"{year}.parquet")
        settings = load_settings(config, environ={})
        engine = db.open_engine(settings.store)
        db.migrate(engine)
        report = run_cycle(engine, settings, settings.models[0])
        assert report.status == "ok", report.error
        rows = drift_rows(engine)
        confirmed[name] = {d.feature for d in rows if d.alert}
        if methods:
            assert {d.method for d in rows} == {"ks", "chi2", "classifier"}
            assert all(d.p_value is not None for d in rows)
    assert confirmed["nannyml"] == {"RELP"}
    assert "RELP" in confirmed["tests"] and len(confirmed["tests"]) >= 8, confirmed["tests"]
    assert "AGEP" not in confirmed["tests"], "age moved by less than the KS floor"

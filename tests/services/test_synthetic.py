"""Extra training rows checked before a retrain learns from them (services.synthetic):
rows like production with labels that follow the concept are kept; rows from another
world, and rows with flipped labels, are rejected with the reason; the decision and its
figures are in the retrain's lineage and its dry run. On the fleet simulator, and on
nannyml's bundled census data."""

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rich.console import Console

from perfwatch.config import load_settings
from perfwatch.render import lineage_text, retrain_plan
from perfwatch.services import synthetic
from perfwatch.services.monitor import run_cycle
from perfwatch.services.promotion import lineage
from perfwatch.services.registry import load_champion
from perfwatch.services.training_rows import retrain_manifest
from perfwatch.simulate.files import write_frame
from perfwatch.simulate.fleet import TARGET
from perfwatch.store import db
from tests.services.test_real_data import census, census_deployment  # noqa: F401  (a fixture)
from tests.services.test_retrain_job import degraded, retrain
from tests.workspace import Workspace, production

EXTRA = '[models.retrain]\nextra_training_data = "extra.parquet"\n'


def like_production() -> pd.DataFrame:
    """More rows of the degraded fleet's world (another seed): what a good generator makes."""
    return production(14, scenario="covariate_shift", shift_day=4, seed=99)


VARIANTS = {
    "like-production": (like_production, "kept", "kept: with them the challenger's roc_auc"),
    "another-world": (
        lambda: like_production().pipe(
            lambda rows: rows.assign(air_temp=rows.air_temp + 6, process_temp=rows.process_temp + 6)
        ),
        "rejected",
        "a classifier tells them from the recent production rows with ROC AUC",
    ),
    "flipped-labels": (
        lambda: like_production().pipe(lambda rows: rows.assign(**{TARGET: 1 - rows[TARGET]})),
        "rejected",
        "their labels disagree with the concept: the champion ranks them with ROC AUC",
    ),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_extra_rows_are_kept_only_when_they_look_real_follow_the_concept_and_do_not_hurt(
    tmp_path: Path, artifacts: Path, sqlite_url: str, variant: str
) -> None:
    make, decision, reason = VARIANTS[variant]
    ws = Workspace.create(tmp_path / "ws", artifacts, sqlite_url, EXTRA)
    extra = make()
    write_frame(extra, ws.root / "extra.parquet")
    engine = ws.engine()
    degraded(ws, engine)
    settings = ws.settings()
    planned = retrain_manifest(engine, settings, settings.models[0], force=True).to_json()
    dry = planned["extra_training_data"]
    assert dry["decision"] == ("pending" if decision == "kept" else "rejected")
    assert dry["rows"] == len(extra) and dry["domain_auc"] is not None
    console = Console(record=True, width=400)
    console.print(retrain_plan("press", planned))
    assert f"extra training rows: {ws.root / 'extra.parquet'} ({len(extra):,} rows" in (
        console.export_text()
    )

    run = retrain(ws, engine, force=True)
    assert run is not None and run.status == "finished", run.error
    check = json.loads(run.manifest)["extra_training_data"]
    assert check["decision"] == decision and check["reason"].startswith(reason), check["reason"]
    assert len(check["features"]) == 6 and check["sha256"]
    folder = Path(run.artifact_path).parent
    learnt_from = pd.read_parquet(folder / "train.parquet")
    assert not learnt_from[TARGET].isna().any()
    assert (
        len(learnt_from)
        == json.loads(run.manifest)["original"]["rows"] + json.loads(run.manifest)["appended_rows"]
    ), "the kept training set holds real rows only"
    assert (folder / "extra" / "extra.parquet").is_file() == (decision == "kept")
    if decision == "kept":
        transfer = check["transfer"]
        assert transfer["metric"] == "roc_auc" and transfer["high"] >= 0
        assert [a["model"] for a in check["labels"]] == ["champion", "model trained on real rows"]
    if run.version_id is not None:
        chain = lineage(engine, settings.models[0])
        assert chain[0]["training_data"]["extra_training_data"]["decision"] == decision
        assert f": {decision}: {check['reason']}" in lineage_text("press", chain)


def test_an_unreadable_extra_file_is_rejected_and_the_retrain_goes_on(
    tmp_path: Path, artifacts: Path, sqlite_url: str
) -> None:
    ws = Workspace.create(tmp_path / "ws", artifacts, sqlite_url, EXTRA)
    write_frame(like_production().drop(columns=["torque"]), ws.root / "extra.parquet")
    engine = ws.engine()
    degraded(ws, engine)
    run = retrain(ws, engine, force=True)
    assert run is not None and run.status == "finished"
    check = json.loads(run.manifest)["extra_training_data"]
    assert check["decision"] == "rejected"
    assert check["reason"].startswith("extra_training_data lacks column(s) 'torque'")


@pytest.mark.slow  # nannyml's bundled census data and a LightGBM fit on it
def test_census_rows_of_another_year_pass_and_their_flipped_labels_do_not(
    tmp_path: Path,
    sqlite_url: str,
    census: dict[str, Any],  # noqa: F811
) -> None:
    """The census model (a bare LGBMClassifier on category columns) registered from a
    real store; 2016's rows as what a retrain appends, 2017's as its held-out rows, and
    2018's as extra rows: as they are, and with their labels flipped."""
    extra = '[models.retrain]\nextra_training_data = "extra.parquet"\n'
    config = census_deployment(tmp_path, census, ["roc_auc"], extra, store=sqlite_url)
    features, rows = census["features"], census["production"]
    settings = load_settings(config, environ={})
    model = settings.models[0]
    engine = db.open_engine(settings.store)
    db.migrate(engine)
    run_cycle(engine, settings, model)  # registers version 1
    champion = load_champion(engine, settings, model)
    real, holdout = rows[rows.year == 2016], rows[rows.year == 2017]
    later = rows[rows.year == 2018][[*features, "employed"]]

    later.to_parquet(tmp_path / "extra.parquet")
    passed = synthetic.examine(model, champion, real, holdout, None)
    assert passed.decision == "pending", passed.reason
    assert passed.domain_auc is not None and passed.domain_auc < 0.75

    later.assign(employed=1 - later["employed"]).to_parquet(tmp_path / "extra.parquet")
    flipped = synthetic.examine(model, champion, real, holdout, None)
    assert flipped.decision == "rejected"
    assert flipped.reason.startswith("their labels disagree with the concept")

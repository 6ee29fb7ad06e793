"""Models as users bring them: a bare LGBMClassifier on pandas `category` columns, a
Pipeline with its own encoder, a model on integer-coded categories, categories that
production never shows. Each registers, scores, is skew-checked and estimated; the bare
model is also retrained, through the gate, into a model of its own family."""

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import joblib
import lightgbm
import pandas as pd
import pytest
from sqlmodel import select

from perfwatch.services.monitor import run_cycle
from perfwatch.services.status import model_status
from perfwatch.simulate.fleet import FEATURES, TARGET, simulate_days
from perfwatch.store.db import transaction
from perfwatch.store.tables import Batch, Cycle, ModelVersion
from tests.services.test_retrain_job import cycle, retrain, versions
from tests.workspace import PRODUCTION_START, Workspace, production

SMALL = {"n_estimators": 60, "verbose": -1, "random_state": 0}


def history(days: int = 20) -> pd.DataFrame:
    return simulate_days(
        start=PRODUCTION_START - timedelta(days=days),
        days=days,
        runs_per_day=800,
        machines=10,
        seed=11,
        id_prefix="hist",
    )


def write_artifacts(folder: Path, frame: pd.DataFrame, model: Any) -> Path:
    """train.parquet, reference.parquet (the last 6 days) and model.joblib, as a user
    would write them: the frames in the dtypes the model was trained on."""
    folder.mkdir(parents=True)
    split = PRODUCTION_START - timedelta(days=6)
    training = frame[frame.timestamp < split]
    model.fit(training[FEATURES], training[TARGET])
    training.to_parquet(folder / "train.parquet")
    frame[frame.timestamp >= split].to_parquet(folder / "reference.parquet")
    joblib.dump(model, folder / "model.joblib")
    return folder


def as_category(frame: pd.DataFrame, categories: list[str] | None = None) -> pd.DataFrame:
    frame = frame.copy()
    values = frame["product_type"]
    categories = categories or sorted(values.unique())
    frame["product_type"] = pd.Categorical(values.where(values.isin(categories)), categories)
    return frame


@pytest.fixture(scope="module")
def bare_lightgbm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The usual LightGBM: an LGBMClassifier fitted on a DataFrame with a category column."""
    folder = tmp_path_factory.mktemp("bare") / "artifacts"
    return write_artifacts(folder, as_category(history()), lightgbm.LGBMClassifier(**SMALL))


def served(rows: pd.DataFrame, artifacts: Path) -> pd.DataFrame:
    """Production rows with the score the deployed model served (fed as it was trained)."""
    model = joblib.load(artifacts / "model.joblib")
    categories = list(model.booster_.pandas_categorical[0])
    scores = model.predict_proba(as_category(rows, categories)[FEATURES])[:, 1]
    return rows.assign(y_pred_proba=scores, y_pred=(scores >= 0.5).astype(int))


def test_a_bare_lightgbm_on_category_columns_is_monitored_end_to_end(
    tmp_path: Path, bare_lightgbm: Path, sqlite_url: str
) -> None:
    ws = Workspace.create(tmp_path / "ws", bare_lightgbm, sqlite_url)
    engine = ws.engine()
    fleet = production(24, scenario="covariate_shift", shift_day=4)
    days = [rows for _, rows in fleet.groupby(fleet.timestamp.dt.date)]
    # the first week arrives with served scores (skew-checked), the next without
    ws.drop_days(served(pd.concat(days[:7]), bare_lightgbm))
    ws.drop_days(pd.concat(days[7:16]))
    ws.drop_labels(pd.concat(days[:14])[["id", TARGET]], "log.parquet")
    report = cycle(ws, engine)
    assert report.rows == 16 * 800 and report.chunks_estimated == 16
    assert report.skew is not None and report.skew.checked == 500
    assert report.skew.mismatched == 0, "served scores equal the champion's on the same inputs"

    with transaction(engine) as session:
        inputs = json.loads(session.exec(select(ModelVersion)).one().inputs)
    product = next(f for f in inputs if f["name"] == "product_type")
    assert product == {
        "name": "product_type",
        "kind": "category",
        "categories": ["H", "L", "M"],
        "integer": False,
    }
    status = model_status(engine, ["press"])[0]
    assert status["last_cycle"]["status"] == "ok"
    assert status["latest_realized"]["metrics"]["roc_auc"]["value"] > 0.8
    assert not [a for a in status["alerts"] if a["kind"] == "skew"]

    run = retrain(ws, engine, force=True)
    assert run is not None and run.status == "finished", run.error
    assert run.decision == "promoted", run.gate
    challenger = joblib.load(run.artifact_path)
    assert type(challenger) is lightgbm.LGBMClassifier, "the challenger keeps the family"
    assert challenger.booster_.pandas_categorical == [["H", "L", "M"]]
    assert versions(engine) == [(1, "retired", "initial_model"), (2, "champion", "retrain")]

    ws.drop_days(served(pd.concat(days[16:]), bare_lightgbm))  # v1 still serves: skew
    after = cycle(ws, engine)
    assert after.rows == 8 * 800 and after.skew.checked == 500
    status = model_status(engine, ["press"])[0]
    assert status["champion_version"] == 2
    assert status["latest_estimate"]["model_version"] == 2


def test_a_failing_skew_check_stores_and_estimates_the_rows_and_alerts(
    sqlite_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import perfwatch.ml.model as ml_model

    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("injected: the champion cannot score")

    monkeypatch.setattr(ml_model, "check_skew", broken)
    ws = sqlite_workspace
    engine = ws.engine()
    rows = production(3).assign(y_pred_proba=0.1, y_pred=0)
    ws.drop_days(rows)
    settings = ws.settings()
    report = run_cycle(engine, settings, settings.models[0])
    assert report.rows == len(rows) and report.chunks_estimated == 3
    assert sorted(p.name for p in (ws.inbox / "processed").iterdir()) == [
        "2026-03-02.parquet",
        "2026-03-03.parquet",
        "2026-03-04.parquet",
    ]
    with transaction(engine) as session:
        assert len(session.exec(select(Batch)).all()) == 3
        assert "injected" in (session.exec(select(Cycle)).one().skew_error or "")
    skew = [a for a in model_status(engine, ["press"])[0]["alerts"] if a["kind"] == "skew"]
    assert skew and "the skew check failed" in skew[0]["message"]
    assert "injected: the champion cannot score" in skew[0]["message"]


def test_a_failing_drift_measurement_keeps_the_rows_and_estimates_and_alerts(
    sqlite_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import perfwatch.ml.chunk_drift as ml_drift

    real = ml_drift.measure

    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("injected: drift cannot be measured")

    monkeypatch.setattr(ml_drift, "measure", broken)
    ws = sqlite_workspace
    engine = ws.engine()
    ws.drop_days(production(3))
    settings = ws.settings()
    report = run_cycle(engine, settings, settings.models[0])
    assert report.rows == 3 * 800 and report.chunks_estimated == 3
    assert report.status == "failed" and "injected" in (report.error or "")
    status = model_status(engine, ["press"])[0]
    assert status["state"] == "failing" and status["rows_ingested"] == 3 * 800
    [alert] = [a for a in status["alerts"] if a["subject"] == "measurement"]
    assert alert["kind"] == "feature_drift" and "injected" in alert["message"]

    monkeypatch.setattr(ml_drift, "measure", real)
    ws.drop_days(production(1, start_day=3))
    assert run_cycle(engine, settings, settings.models[0]).status == "ok"
    status = model_status(engine, ["press"])[0]
    assert not [a for a in status["alerts"] if a["subject"] == "measurement"]


def user_model_workspace(root: Path, sqlite_url: str, frame: pd.DataFrame, model: Any) -> Workspace:
    return Workspace.create(
        root / "ws", write_artifacts(root / "artifacts", frame, model), sqlite_url
    )


def test_a_pipeline_with_its_own_encoder_scores_text_categories(
    tmp_path: Path, sqlite_url: str
) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    encode = ColumnTransformer(
        [("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["product_type"])],
        remainder="passthrough",
    ).set_output(transform="pandas")
    pipeline = Pipeline([("encode", encode), ("model", lightgbm.LGBMClassifier(**SMALL))])
    ws = user_model_workspace(tmp_path, sqlite_url, history(), pipeline)
    engine = ws.engine()
    rows = production(4)
    rows.loc[rows.index[-40:], "product_type"] = "Z"  # a variant the encoder never saw
    ws.drop_days(rows)
    report = cycle(ws, engine)
    assert report.rows == len(rows) and report.chunks_estimated == 4
    status = model_status(engine, ["press"])[0]
    assert status["latest_complete_estimate"]["metrics"]["roc_auc"]["value"] > 0.8
    assert ("product_type", "unseen_category") in {
        (f["column"], f["kind"]) for f in status["data_quality"]
    }


def test_a_model_on_integer_coded_categories_gets_numbers(tmp_path: Path, sqlite_url: str) -> None:
    frame = history()
    frame["product_type"] = frame["product_type"].map({"L": 0, "M": 1, "H": 2})
    ws = user_model_workspace(tmp_path, sqlite_url, frame, lightgbm.LGBMClassifier(**SMALL))
    engine = ws.engine()
    rows = production(4)
    rows["product_type"] = rows["product_type"].map({"L": 0, "M": 1, "H": 2})
    ws.drop_days(rows)
    report = cycle(ws, engine)
    assert report.rows == len(rows) and report.chunks_estimated == 4
    with transaction(engine) as session:
        version = session.exec(select(ModelVersion)).one()
    product = next(f for f in json.loads(version.inputs) if f["name"] == "product_type")
    assert product["kind"] == "number" and product["integer"]
    contract = next(c for c in json.loads(version.contract) if c["name"] == "product_type")
    assert contract["categories"] == ["0", "1", "2"]


def test_categories_the_model_knows_but_production_never_shows(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Trained with a variant X (a category with no rows in this span, as pandas keeps it
    after a filter); production shows only L, M, H and an unseen Z."""
    frame = as_category(history(), ["H", "L", "M", "X"])
    ws = user_model_workspace(tmp_path, sqlite_url, frame, lightgbm.LGBMClassifier(**SMALL))
    engine = ws.engine()
    rows = production(4)
    rows.loc[rows.index[:30], "product_type"] = "Z"
    ws.drop_days(served(rows, ws.root / "artifacts"))
    report = cycle(ws, engine)
    assert report.rows == len(rows) and report.skew.mismatched == 0
    with transaction(engine) as session:
        inputs = json.loads(session.exec(select(ModelVersion)).one().inputs)
    assert next(f for f in inputs if f["name"] == "product_type")["categories"] == [
        "H",
        "L",
        "M",
        "X",
    ]


@pytest.mark.filterwarnings("error::FutureWarning")
def test_a_pipeline_handing_numpy_to_lightgbm_runs_without_warnings(
    tmp_path: Path, sqlite_url: str
) -> None:
    """LightGBM 4.5 under scikit-learn 1.7 warns on every numpy prediction; a cycle and a
    retrain of such a pipeline print nothing."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    encode = ColumnTransformer(
        [("onehot", OneHotEncoder(handle_unknown="ignore"), ["product_type"])],
        remainder="passthrough",
    )  # a numpy array out: what most pipelines hand their model
    pipeline = Pipeline([("encode", encode), ("model", lightgbm.LGBMClassifier(**SMALL))])
    with pytest.warns(FutureWarning, match="force_all_finite"):  # the noise being muted
        write_artifacts(tmp_path / "artifacts", history(), pipeline)
    ws = Workspace.create(tmp_path / "ws", tmp_path / "artifacts", sqlite_url)
    engine = ws.engine()
    fleet = production(6)
    ws.drop_days(fleet)
    ws.drop_labels(fleet[["id", TARGET]], "log.parquet")
    assert cycle(ws, engine).rows == len(fleet)
    run = retrain(ws, engine, force=True)
    assert run is not None and run.status == "finished", run.error


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_bare_lightgbm_on_a_boolean_category_scores_as_it_was_trained(
    tmp_path: Path, sqlite_url: str, fmt: str
) -> None:
    """product_type as "is it an H variant?", a pandas category of booleans (nannyml's car
    loans have such a column). The reference keeps it as bool, a CSV batch as the text
    True/False: perfwatch must give the model True and False again, or every score,
    skew check and gate comparison is quietly wrong (it gave it missing values once)."""

    def heavy(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(product_type=pd.Categorical(frame["product_type"] == "H"))

    ws = user_model_workspace(
        tmp_path, sqlite_url, heavy(history()), lightgbm.LGBMClassifier(**SMALL)
    )
    engine = ws.engine()
    model = joblib.load(ws.root / "artifacts" / "model.joblib")
    rows = heavy(production(4))
    scores = model.predict_proba(rows[FEATURES])[:, 1]
    written = rows.assign(product_type=rows["product_type"].astype(bool))
    ws.drop_days(written.assign(y_pred_proba=scores), fmt=fmt)
    report = cycle(ws, engine)
    assert report.rows == len(rows) and report.skew.checked > 0
    assert report.skew.mismatched == 0 and report.skew.largest < 1e-9

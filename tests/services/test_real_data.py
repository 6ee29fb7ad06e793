"""A model we did not make on data we did not simulate: nannyml's bundled US census
employment data (real; 2015 as training and reference, 2016-2018 as production, with
their targets), a bare LGBMClassifier trained on its pandas `category` columns, monitored
through real cycles. Every estimate equals nannyml's CBPE and every realized metric its
PerformanceCalculator on the same chunks."""

import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import joblib
import lightgbm
import pandas as pd
import pytest

from perfwatch.config import load_settings
from perfwatch.services.monitor import run_cycle
from perfwatch.services.status import history, model_status
from perfwatch.store import db

METRICS = ["roc_auc", "f1", "precision", "recall", "specificity", "accuracy"]
DAYS_PER_YEAR = 10  # each survey year spread over 10 days: one chunk a day


def timed(frame: pd.DataFrame, days: int) -> pd.DataFrame:
    """The census has a year, not a time: each year's rows spread evenly over `days` days
    from January 1st, in their order."""
    frame = frame.copy()
    position = frame.groupby("year").cumcount() / frame.groupby("year")["year"].transform("size")
    start = pd.to_datetime(frame["year"].astype(str) + "-01-01", utc=True)
    frame["timestamp"] = start + pd.to_timedelta(position * days * 86400, unit="s")
    return frame


@pytest.fixture(scope="module")
def census() -> dict[str, Any]:
    import nannyml as nml

    reference, analysis, targets = nml.load_us_census_ma_employment_data()
    categorical = [
        c for c in reference.columns if isinstance(reference[c].dtype, pd.CategoricalDtype)
    ]
    features = ["AGEP", *categorical]
    first = timed(reference, 2 * DAYS_PER_YEAR)  # 2015: 10 days to train on, 10 of reference
    split = datetime(2015, 1, 1, tzinfo=UTC) + timedelta(days=DAYS_PER_YEAR)
    training, reference = first[first.timestamp < split], first[first.timestamp >= split]
    model = lightgbm.LGBMClassifier(n_estimators=100, verbose=-1, random_state=0)
    model.fit(training[features], training["employed"])
    production = timed(analysis, DAYS_PER_YEAR).merge(targets, on="id")
    return {
        "features": features,
        "categorical": categorical,
        "training": training,
        "reference": reference,
        "production": production,
        "model": model,
    }


CONFIG = """\
store = "{store}"
data_dir = "var"

[[models]]
name = "employment"
target = "employed"
features = {features}
categorical = {categorical}
metrics = {metrics}
inbox = "inbox"
labels_inbox = "labels"
initial_model = "model.joblib"
reference = "reference.parquet"
training_data = "train.parquet"
"""


def census_deployment(
    folder: Path, census: dict[str, Any], metrics: list[str], extra: str = "", *, store: str = ""
) -> Path:
    """The census model's files and a config for it in `folder` (its store a SQLite file
    there unless given), with an empty inbox; `extra` is appended to the config."""
    columns = ["id", "timestamp", *census["features"]]
    (folder / "inbox").mkdir(parents=True, exist_ok=True)
    census["training"][[*columns, "employed"]].to_parquet(folder / "train.parquet")
    census["reference"][[*columns, "employed"]].to_parquet(folder / "reference.parquet")
    joblib.dump(census["model"], folder / "model.joblib")
    config = folder / "perfwatch.toml"
    config.write_text(
        CONFIG.format(
            store=store or f"sqlite:///{folder / 'store.db'}",
            features=repr(census["features"]).replace("'", '"'),
            categorical=repr(census["categorical"]).replace("'", '"'),
            metrics=repr(metrics).replace("'", '"'),
        )
        + extra
    )
    return config


@pytest.mark.slow  # an oracle comparison on nannyml's bundled data (CI runs it)
def test_a_bare_lightgbm_on_census_categories_matches_nannyml(
    tmp_path: Path, sqlite_url: str, census: dict[str, Any]
) -> None:
    features, production = census["features"], census["production"]
    columns = ["id", "timestamp", *features]
    census["training"][[*columns, "employed"]].to_parquet(tmp_path / "train.parquet")
    census["reference"][[*columns, "employed"]].to_parquet(tmp_path / "reference.parquet")
    joblib.dump(census["model"], tmp_path / "model.joblib")
    for year, rows in production.groupby("year"):  # what a user's pipeline drops: a file a year
        (tmp_path / "inbox").mkdir(exist_ok=True)
        (tmp_path / "labels").mkdir(exist_ok=True)
        rows[columns].to_parquet(tmp_path / "inbox" / f"{year}.parquet")
        rows[["id", "employed"]].to_csv(tmp_path / "labels" / f"{year}.csv", index=False)
    config = tmp_path / "perfwatch.toml"
    config.write_text(
        CONFIG.format(
            store=sqlite_url,
            features=repr(features).replace("'", '"'),
            categorical=repr(census["categorical"]).replace("'", '"'),
            metrics=repr(METRICS).replace("'", '"'),
        )
    )
    settings = load_settings(config, environ={})
    engine = db.open_engine(settings.store)
    db.migrate(engine)
    report = run_cycle(engine, settings, settings.models[0])
    assert report.status == "ok", report.error
    assert report.rows == len(production) and report.chunks_estimated == 3 * DAYS_PER_YEAR

    expected_estimates, expected_realized = nannyml_figures(census)
    rows = history(engine, "employment")
    for metric in METRICS:
        ours = [r for r in rows if r["metric"] == metric]
        assert [r["estimated"] for r in ours] == pytest.approx(
            expected_estimates[(metric, "value")].tolist(), abs=1e-9
        ), metric
        judged = [r["realized"] for r in ours if r["realized"] is not None]
        assert len(judged) == 3 * DAYS_PER_YEAR - 1  # all but the newest chunk, not complete
        assert judged == pytest.approx(
            expected_realized[(metric, "value")].tolist()[: len(judged)], abs=1e-9
        ), metric
    status = model_status(engine, ["employment"])[0]
    labels = status["labels"]
    assert labels["held"] == 0 and labels["stored"] == len(production)
    # real survey years drift (RELP), but within what the model saw: its estimates hold
    measured = [r for r in rows if r["reliable"] is not None]
    assert measured and all(r["reliable"] for r in measured)
    assert "extrapolation" not in {a["kind"] for a in status["alerts"]}


def nannyml_figures(census: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """nannyml's own CBPE and PerformanceCalculator on the same rows, scored by the model
    on its own `category` frame, in daily chunks."""
    import nannyml as nml

    model, features = census["model"], census["features"]
    reference, production = census["reference"].copy(), census["production"].copy()
    for frame in (reference, production):
        frame["y_pred_proba"] = model.predict_proba(frame[features])[:, 1]
        frame["y_pred"] = (frame["y_pred_proba"] >= 0.5).astype(int)
    options = {
        "problem_type": "classification_binary",
        "y_pred_proba": "y_pred_proba",
        "y_pred": "y_pred",
        "y_true": "employed",
        "timestamp_column_name": "timestamp",
        "metrics": METRICS,
        "chunk_period": "D",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = nml.CBPE(**options).fit(reference)
        estimates = estimator.estimate(production.drop(columns="employed"))
        calculator = nml.PerformanceCalculator(**options).fit(reference)
        realized = calculator.calculate(production)
    return (
        estimates.filter(period="analysis").to_df(),
        realized.filter(period="analysis").to_df(),
    )

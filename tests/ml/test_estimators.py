"""ml's wrappers of nannyml on their own: perfwatch's chunk column gives the figures
nannyml gives with its own daily chunker, for CBPE, realized metrics and feature drift;
and scoring fills only what serving left out."""

import os

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

from perfwatch.domain.chunks import CHUNK_COLUMN, ChunkPeriod
from perfwatch.ingest.batch import assign_chunks
from perfwatch.ml import cbpe, drift, realized
from perfwatch.ml.cbpe import Columns
from perfwatch.ml.inputs import ModelInputs
from perfwatch.ml.model import SkewCheck, check_skew, fill_scores

COLUMNS = Columns(score="p", prediction="y_hat", target="y", timestamp="t")
METRICS = ["roc_auc", "f1", "recall"]
DAY = ChunkPeriod.parse("1D")
FEATURES = ["heat", "load"]


def days(first: str, count: int, rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """`rows` scored rows a day: calibrated scores, labels drawn from them."""
    rng = np.random.default_rng(seed)
    n = count * rows
    heat, load = rng.normal(shift, 1, n), rng.normal(0, 1, n)
    p = 1 / (1 + np.exp(-(heat + load - 2)))
    start = pd.Timestamp(first, tz="UTC")
    frame = pd.DataFrame(
        {
            "t": start + pd.to_timedelta(np.arange(n) * (86_400 / rows), unit="s"),
            "heat": heat,
            "load": load,
            "p": p,
            "y_hat": (p >= 0.5).astype(int),
            "y": (rng.random(n) < p).astype(int),
        }
    )
    assign_chunks(frame, "t", DAY)
    return frame


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    return days("2026-01-05", 10, 400, seed=1), days("2026-01-15", 5, 400, seed=2, shift=0.8)


def nannyml_options() -> dict[str, object]:
    """nannyml's own daily chunker, on the same columns."""
    return {"timestamp_column_name": "t", "chunk_period": "D"}


def performance_options() -> dict[str, object]:
    return {
        "problem_type": "classification_binary",
        "y_pred_proba": "p",
        "y_pred": "y_hat",
        "y_true": "y",
        "metrics": METRICS,
        **nannyml_options(),
    }


def test_cbpe_estimates_equal_nannyml_with_its_own_chunker(data: tuple) -> None:
    import nannyml as nml

    reference, analysis = data
    estimator, figures = cbpe.fit(reference, columns=COLUMNS, metrics=METRICS, period=DAY)
    ours = cbpe.estimate(estimator, analysis, columns=COLUMNS, metrics=METRICS)
    theirs = (
        nml.CBPE(**performance_options())
        .fit(reference.drop(columns=CHUNK_COLUMN))
        .estimate(analysis.drop(columns=[CHUNK_COLUMN, "y"]))
        .filter(period="analysis")
        .to_df()
    )
    assert len(ours) == 5 * len(METRICS)
    for metric in METRICS:
        values = [e.value for e in ours if e.metric == metric]
        np.testing.assert_allclose(values, theirs[(metric, "value")], rtol=0, atol=1e-9)
        lower = [e.lower for e in ours if e.metric == metric]
        expected = theirs[(metric, "lower_confidence_boundary")]
        np.testing.assert_allclose(lower, expected, rtol=0, atol=1e-9)
    assert [e.rows for e in ours if e.metric == "f1"] == [400] * 5
    assert {f.metric for f in figures} == set(METRICS)


def test_realized_metrics_equal_nannyml(data: tuple) -> None:
    import nannyml as nml

    reference, analysis = data
    calculator = realized.fit_calculator(reference, columns=COLUMNS, metrics=METRICS, period=DAY)
    ours = realized.calculate(calculator, analysis, columns=COLUMNS, metrics=METRICS)
    theirs = (
        nml.PerformanceCalculator(**performance_options())
        .fit(reference.drop(columns=CHUNK_COLUMN))
        .calculate(analysis.drop(columns=CHUNK_COLUMN))
        .filter(period="analysis")
        .to_df()
    )
    for metric in METRICS:
        values = [r.value for r in ours if r.metric == metric]
        np.testing.assert_allclose(values, theirs[(metric, "value")], rtol=0, atol=1e-9)


def test_feature_drift_equals_nannyml_and_sees_the_shift(data: tuple) -> None:
    import nannyml as nml

    reference, analysis = data
    calculators = drift.fit(reference, features=FEATURES, categorical=[], timestamp="t", period=DAY)
    ours = drift.calculate(calculators, analysis, timestamp="t")
    theirs = (
        nml.UnivariateDriftCalculator(
            column_names=FEATURES, continuous_methods=["jensen_shannon"], **nannyml_options()
        )
        .fit(reference[[*FEATURES, "t"]])
        .calculate(analysis[[*FEATURES, "t"]])
        .filter(period="analysis")
        .to_df()
    )
    heat = [d.value for d in ours if d.feature == "heat"]
    np.testing.assert_allclose(heat, theirs[("heat", "jensen_shannon", "value")], atol=1e-9)
    assert all(d.alert for d in ours if d.feature == "heat")  # shifted by 0.8 sigma
    assert not any(d.alert for d in ours if d.feature == "load")
    assert len([d for d in ours if d.method == "reconstruction_error"]) == 5


def test_scoring_fills_only_what_serving_left_out() -> None:
    rows = days("2026-01-05", 1, 200, seed=3)
    model = LogisticRegression().fit(rows[FEATURES], rows["y"])
    inputs = ModelInputs.as_stored(FEATURES, [])
    served = rows["p"].copy()
    rows.loc[rows.index[:50], ["p", "y_hat"]] = np.nan
    loads: list[int] = []

    def load() -> LogisticRegression:
        loads.append(1)
        return model

    scored = fill_scores(
        load, rows, inputs=inputs, score_column="p", prediction_column="y_hat", threshold=0.3
    )
    assert scored == 50 and loads == [1]
    expected = model.predict_proba(rows[FEATURES].iloc[:50])[:, 1]
    np.testing.assert_allclose(rows["p"].iloc[:50], expected)
    assert rows["y_hat"].iloc[:50].tolist() == (expected >= 0.3).astype(int).tolist()
    assert rows["p"].iloc[50:].tolist() == served.iloc[50:].tolist()  # served: kept
    full = rows.assign(p=served)
    assert fill_scores(load, full, inputs=inputs, score_column="p", prediction_column="y_hat") == 0
    assert loads == [1], "a model nobody needs is not loaded"


def test_skew_is_found_where_serving_scores_differ_from_the_artifact() -> None:
    rows = days("2026-01-05", 1, 300, seed=4)
    model = LogisticRegression().fit(rows[FEATURES], rows["y"])
    inputs = ModelInputs.as_stored(FEATURES, [])
    rows["p"] = model.predict_proba(rows[FEATURES])[:, 1]

    def skew(served: bool) -> object:
        flags = pd.Series(served, index=rows.index)
        return check_skew(
            lambda: model, rows, served=flags, inputs=inputs, score_column="p", tolerance=0.01
        )

    same = skew(True)
    assert isinstance(same, SkewCheck) and same.mismatched == 0 and same.checked > 0
    rows["p"] = (rows["p"] + 0.2).clip(upper=1.0)  # serving prepares the inputs differently
    skewed = skew(True)
    assert isinstance(skewed, SkewCheck) and skewed.mismatched > 0 and skewed.largest > 0.1
    assert skew(False) is None  # nothing served a score: nothing to compare

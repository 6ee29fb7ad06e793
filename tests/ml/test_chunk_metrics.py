"""perfwatch's per-chunk arithmetic equals nannyml's, figure for figure (issue 14): CBPE's
estimates and bands and the PerformanceCalculator's realized metrics, on nannyml's bundled
real and synthetic data, on the fleet simulator, from chunks of 50 rows to 100,000, with
tied and constant scores, single-class chunks, and arrays hypothesis makes up."""

import os
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

from perfwatch.domain.chunks import CHUNK_COLUMN, SECOND_NS, Chunking, ChunkPeriod, RowChunks
from perfwatch.ingest.batch import assign_chunks
from perfwatch.ml import cbpe, chunk_metrics, realized
from perfwatch.ml.cbpe import Columns
from perfwatch.ml.chunk_metrics import Fitted
from tests.workspace import production

COLUMNS = Columns(score="p", prediction="y_hat", target="y", timestamp="t")
ALL = ["roc_auc", "f1", "precision", "recall", "specificity", "accuracy", "average_precision"]
TOLERANCE = 1e-9


def framed(scores: Any, predictions: Any, targets: Any, times: Any) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "p": np.asarray(scores, dtype=float),
            "y_hat": np.asarray(predictions, dtype=int),
            "y": np.asarray(targets, dtype=int),
            "t": pd.to_datetime(times, utc=True),
        }
    )


def chunked(frame: pd.DataFrame, chunking: Chunking) -> pd.DataFrame:
    frame = frame.sort_values("t", kind="stable").reset_index(drop=True)
    assign_chunks(frame, "t", chunking)
    return frame


def figures(estimates: list[Any]) -> dict[str, np.ndarray]:
    def nan(value: float | None) -> float:
        return np.nan if value is None else value

    return {
        "key": np.array([(e.chunk_start.timestamp(), e.metric) for e in estimates], dtype=object),
        "end": np.array([e.chunk_end.timestamp() for e in estimates]),
        "rows": np.array([e.rows for e in estimates]),
        "value": np.array([e.value for e in estimates], dtype=float),
        "sampling_error": np.array([nan(e.sampling_error) for e in estimates], dtype=float),
        "lower": np.array([nan(e.lower) for e in estimates], dtype=float),
        "upper": np.array([nan(e.upper) for e in estimates], dtype=float),
    }


def assert_equal_to_nannyml(
    reference: pd.DataFrame, analysis: pd.DataFrame, chunking: Chunking, metrics: list[str] = ALL
) -> Fitted:
    """Fit nannyml's CBPE and PerformanceCalculator on the reference; both estimate the
    analysis rows, and both calculate their realized metrics."""
    estimator, _ = cbpe.fit(reference, columns=COLUMNS, metrics=metrics, period=chunking)
    calculator = realized.fit_calculator(
        reference, columns=COLUMNS, metrics=metrics, period=chunking
    )
    fitted = Fitted.from_json(Fitted.of(estimator, calculator).to_json())  # as stored
    assert_realized_equal(fitted, calculator, analysis, metrics)
    ours = chunk_metrics.estimate(
        fitted, analysis, columns=COLUMNS, metrics=metrics, chunking=chunking
    )
    theirs = cbpe.estimate(estimator, analysis, columns=COLUMNS, metrics=metrics)
    mine, expected = figures(ours), figures(theirs)
    assert len(ours) == len(theirs) > 0
    assert (mine["key"] == expected["key"]).all()
    np.testing.assert_array_equal(mine["end"], expected["end"])
    np.testing.assert_array_equal(mine["rows"], expected["rows"])
    for name in ("value", "sampling_error", "lower", "upper"):
        np.testing.assert_allclose(
            mine[name], expected[name], rtol=0, atol=TOLERANCE, equal_nan=True, err_msg=name
        )
    return fitted


def assert_realized_equal(
    fitted: Fitted, calculator: Any, labeled: pd.DataFrame, metrics: list[str]
) -> None:
    ours = chunk_metrics.realize(fitted, labeled, columns=COLUMNS, metrics=metrics)
    theirs = realized.calculate(calculator, labeled, columns=COLUMNS, metrics=metrics)
    assert [(r.chunk_start, r.metric) for r in ours] == [(r.chunk_start, r.metric) for r in theirs]
    for name in ("value", "sampling_error"):
        mine = np.array([np.nan if getattr(r, name) is None else getattr(r, name) for r in ours])
        expected = [np.nan if getattr(r, name) is None else getattr(r, name) for r in theirs]
        np.testing.assert_allclose(
            mine, expected, rtol=0, atol=TOLERANCE, equal_nan=True, err_msg=f"realized {name}"
        )


def car_loan() -> tuple[pd.DataFrame, pd.DataFrame]:
    """nannyml's synthetic car loans: scores written with 2 decimals (many ties)."""
    import nannyml as nml

    reference, analysis, targets = nml.load_synthetic_car_loan_dataset()
    analysis = analysis.merge(targets, on="id")
    return tuple(  # type: ignore[return-value]
        framed(f.y_pred_proba, f.y_pred, f.repaid, f.timestamp) for f in (reference, analysis)
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "chunking", [RowChunks(50), RowChunks(5_000), ChunkPeriod.parse("1W")], ids=str
)
def test_car_loans(chunking: Chunking) -> None:
    reference, analysis = car_loan()
    if chunking == RowChunks(50):  # 200 tiny chunks of each: nannyml takes 3 minutes on 1,000
        reference, analysis = reference.iloc[:10_000], analysis.iloc[:10_000]
    assert_equal_to_nannyml(chunked(reference, chunking), chunked(analysis, chunking), chunking)


@pytest.mark.slow
def test_the_work_from_home_data_in_chunks_of_100_000_rows() -> None:
    import nannyml as nml

    reference, analysis, targets = nml.load_synthetic_binary_classification_dataset()
    analysis = analysis.merge(targets, on="id")
    both = [
        framed(f.y_pred_proba, f.y_pred, f.work_home_actual, f.timestamp)
        for f in (reference, analysis)
    ]
    reference = pd.concat([both[0], both[0].assign(t=both[0].t - pd.Timedelta(days=3650))])
    analysis = pd.concat([both[1], both[1].assign(t=both[1].t + pd.Timedelta(days=3650))])
    chunking = RowChunks(100_000)  # the reference is one chunk of 100,000 rows
    assert_equal_to_nannyml(
        chunked(reference, RowChunks(10_000)), chunked(analysis, chunking), chunking
    )


@pytest.mark.slow
def test_us_census_scored_by_a_model_we_did_not_make() -> None:
    import lightgbm
    import nannyml as nml

    reference, analysis, targets = nml.load_us_census_ma_employment_data()
    analysis = analysis.merge(targets, on="id")
    features = [c for c in reference.columns if c not in ("id", "year", "employed")]
    model = lightgbm.LGBMClassifier(n_estimators=30, verbose=-1, random_state=0)
    model.fit(reference[features], reference["employed"])

    def scored(frame: pd.DataFrame) -> pd.DataFrame:
        p = model.predict_proba(frame[features])[:, 1]
        times = pd.to_datetime(frame["year"].astype(str), utc=True) + pd.to_timedelta(
            np.arange(len(frame)) % 86_400, unit="s"
        )
        return framed(p, p >= 0.5, frame["employed"], times)

    chunking = RowChunks(2_000)
    assert_equal_to_nannyml(
        chunked(scored(reference), chunking), chunked(scored(analysis), chunking), chunking
    )


@pytest.mark.parametrize("scenario", ["heat_wave", "covariate_shift", "concept_drift"])
def test_the_fleet_simulator(scenario: str, artifacts: Any) -> None:
    import joblib

    from perfwatch.simulate.fleet import FEATURES, TARGET

    model = joblib.load(artifacts / "model.joblib")
    rows = production(28, scenario=scenario, seed=3, shift_day=7)

    def scored(frame: pd.DataFrame) -> pd.DataFrame:
        p = model.predict_proba(frame[FEATURES])[:, 1]
        return framed(p, p >= 0.5, frame[TARGET], frame["timestamp"])

    day = ChunkPeriod.parse("1D")
    reference = chunked(pd.read_parquet(artifacts / "reference.parquet").pipe(scored), day)
    assert_equal_to_nannyml(reference, chunked(scored(rows), day), day)


def test_constant_and_certain_scores_give_what_nannyml_gives() -> None:
    rng = np.random.default_rng(5)
    times = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(4000) * 60, unit="s")
    scores = rng.beta(1, 4, 4000)
    reference = chunked(
        framed(scores, scores >= 0.5, rng.random(4000) < scores, times), RowChunks(400)
    )
    later = times + pd.Timedelta(days=30)
    constant = np.r_[np.full(400, 0.3), np.full(400, 0.97), np.zeros(400), np.ones(400)]
    analysis = chunked(
        framed(constant, constant >= 0.5, np.zeros(1600), later[:1600]), RowChunks(400)
    )
    assert_equal_to_nannyml(reference, analysis, RowChunks(400))


@pytest.fixture(scope="module")
def fitted_on_car_loans() -> Any:
    reference, _ = car_loan()
    chunking = RowChunks(2_500)
    reference = chunked(reference, chunking)
    estimator, _ = cbpe.fit(reference, columns=COLUMNS, metrics=ALL, period=chunking)
    calculator = realized.fit_calculator(reference, columns=COLUMNS, metrics=ALL, period=chunking)
    return estimator, calculator


scores_of_a_chunk = st.lists(
    st.sampled_from([0.0, 0.01, 0.2, 0.5, 0.51, 0.9, 0.99, 1.0]) | st.floats(0, 1),
    min_size=1,
    max_size=60,
)
# how a chunk's predictions and targets relate to its scores: as served, against them,
# all one class; targets drawn, all 0 or all 1
rows_of_a_chunk = st.tuples(
    scores_of_a_chunk,
    st.sampled_from(["served", "against", "all 0", "all 1"]),
    st.sampled_from(["drawn", "all 0", "all 1"]),
    st.integers(0, 2**16),
)


def _made_up(scores: list[float], predicted: str, truth: str, seed: int) -> tuple[Any, Any]:
    values = np.asarray(scores)
    predictions = {
        "served": values >= 0.5,
        "against": values < 0.5,
        "all 0": np.zeros(len(values)),
        "all 1": np.ones(len(values)),
    }[predicted]
    drawn = np.random.default_rng(seed).random(len(values)) < values
    targets = {"drawn": drawn, "all 0": np.zeros(len(values)), "all 1": np.ones(len(values))}
    return predictions, targets[truth]


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=st.lists(rows_of_a_chunk, min_size=1, max_size=6), shuffle=st.booleans())
def test_any_scores_predictions_and_targets(
    fitted_on_car_loans: Any, chunks: list[Any], shuffle: bool
) -> None:
    """Made-up chunks: ties, scores of 0 and 1, one row, predictions against the scores or
    of one class, targets of one class."""
    parts = []
    for index, (scores, predicted, truth, seed) in enumerate(chunks):
        predictions, targets = _made_up(scores, predicted, truth, seed)
        start = pd.Timestamp("2030-01-01", tz="UTC") + pd.Timedelta(days=index)
        times = start + pd.to_timedelta(np.arange(len(scores)), unit="s")
        part = framed(scores, predictions, targets, times)
        part[CHUNK_COLUMN] = start.value // SECOND_NS * SECOND_NS
        parts.append(part)
    analysis = pd.concat(parts, ignore_index=True)
    if shuffle:  # rows of several chunks interleaved: grouped as nannyml groups them
        analysis = analysis.sample(frac=1.0, random_state=0).reset_index(drop=True)
    estimator, calculator = fitted_on_car_loans
    fitted = Fitted.of(estimator, calculator)
    ours = chunk_metrics.estimate(
        fitted, analysis, columns=COLUMNS, metrics=ALL, chunking=RowChunks(60)
    )
    theirs = cbpe.estimate(estimator, analysis, columns=COLUMNS, metrics=ALL)
    mine, expected = figures(ours), figures(theirs)
    for name in ("value", "sampling_error", "lower", "upper"):
        np.testing.assert_allclose(
            mine[name], expected[name], rtol=0, atol=TOLERANCE, equal_nan=True, err_msg=name
        )
    assert_realized_equal(fitted, calculator, analysis, ALL)


def test_nan_scores_are_refused_not_estimated() -> None:
    estimator = Fitted(None, None, ())
    rows = framed([0.2, np.nan], [0, 1], [0, 1], ["2026-01-01", "2026-01-02"])
    rows[CHUNK_COLUMN] = 0
    from perfwatch.errors import EstimationError

    with pytest.raises(EstimationError, match="scores must be numbers"):
        chunk_metrics.estimate(estimator, rows, columns=COLUMNS, metrics=[], chunking=RowChunks(10))

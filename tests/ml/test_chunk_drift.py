"""perfwatch's univariate drift arithmetic equals nannyml's Jensen-Shannon distances and
raw alerts, chunk by chunk (issue 14): continuous and categorical features, values
outside every reference bin, unseen categories, missing values, chunks of one row."""

import os
from typing import Any

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

from perfwatch.domain.chunks import CHUNK_COLUMN, SECOND_NS, ChunkPeriod, RowChunks
from perfwatch.domain.drift import MULTIVARIATE
from perfwatch.ingest.batch import assign_chunks
from perfwatch.ml import drift
from perfwatch.ml.chunk_drift import (
    FittedDrift,
    FittedFeature,
    FittedReconstruction,
    jensen_shannon,
    measure,
    reconstruction_error,
)
from perfwatch.ml.chunk_metrics import Chunks, check_equal
from tests.workspace import production

TOLERANCE = 1e-9


def assert_equal_to_nannyml(
    reference: pd.DataFrame,
    analysis: pd.DataFrame,
    features: list[str],
    categorical: list[str],
    chunking: Any,
) -> None:
    """Both halves of drift, fitted by nannyml: each feature's Jensen-Shannon distance and
    the PCA reconstruction error, with their raw alerts and thresholds."""
    calculators = drift.fit(
        reference, features=features, categorical=categorical, timestamp="t", period=chunking
    )
    theirs = drift.calculate(calculators, analysis, timestamp="t")
    chunks = Chunks.of(analysis[CHUNK_COLUMN].to_numpy(dtype="int64"))
    by_feature = {f.name: f for f in FittedFeature.all_of(calculators.univariate)}
    for name in features:
        mine = jensen_shannon(by_feature[name], analysis[name], chunks)
        assert_same(mine, by_feature[name], [d for d in theirs if d.feature == name], name)
    reconstruction = FittedReconstruction.of(calculators.multivariate)
    mine = reconstruction_error(reconstruction, analysis, chunks)
    assert_same(mine, reconstruction, [d for d in theirs if d.feature == MULTIVARIATE], "PCA")
    # the cycle's path: the figures as the store keeps them (JSON), applied by `measure`
    stored = FittedDrift.of(calculators.univariate, calculators.multivariate, "-").to_json()
    measured = measure(FittedDrift.from_json(stored), analysis)
    check_equal(measured, theirs, ("value", "threshold", "alert"), named="feature")


def assert_same(mine: np.ndarray, fitted: Any, expected: list[Any], what: str) -> None:
    assert len(expected) == len(mine), what
    values = [d.value for d in expected]
    np.testing.assert_allclose(mine, values, rtol=0, atol=TOLERANCE, equal_nan=True, err_msg=what)
    assert fitted.alert(mine).tolist() == [d.alert for d in expected], what
    assert fitted.upper_threshold == pytest.approx(expected[0].threshold, abs=1e-12), what


@pytest.mark.parametrize("scenario", ["heat_wave", "covariate_shift", "stable"])
def test_the_fleet_simulator(scenario: str) -> None:
    """Both halves of the drift step on the simulator's fleet."""
    from perfwatch.simulate.fleet import CATEGORICAL, FEATURES

    day = ChunkPeriod.parse("1D")
    reference = production(14, seed=2).rename(columns={"timestamp": "t"})
    analysis = production(20, scenario=scenario, seed=3, start_day=14, shift_day=6)
    analysis = analysis.rename(columns={"timestamp": "t"})
    for frame in (reference, analysis):
        assign_chunks(frame, "t", day)
    assert_equal_to_nannyml(reference, analysis, FEATURES, CATEGORICAL, day)


def test_unseen_values_missing_values_and_tiny_chunks() -> None:
    rng = np.random.default_rng(4)
    n = 3000
    times = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(n) * 600, unit="s")
    reference = pd.DataFrame(
        {"x": rng.normal(0, 1, n), "kind": rng.choice(["a", "b", "c"], n), "t": times}
    )
    later = times[-1] + pd.to_timedelta(np.arange(1, 41) * 600, unit="s")
    x = np.r_[rng.normal(3, 1, 20), [np.nan] * 5, [99.0, -99.0], rng.normal(0, 1, 13)]
    kinds = np.r_[["a"] * 10, ["zz"] * 10, [None] * 5, ["b"] * 15].astype(object)
    analysis = pd.DataFrame({"x": x, "kind": kinds, "t": later})
    chunking = RowChunks(7)
    assign_chunks(reference, "t", RowChunks(300))
    assign_chunks(analysis, "t", chunking)
    analysis.loc[analysis.index[-1], CHUNK_COLUMN] += 10 * SECOND_NS  # a chunk of one row
    assert_equal_to_nannyml(reference, analysis, ["x", "kind"], ["kind"], chunking)


def test_the_reconstruction_error_with_unseen_and_missing_values() -> None:
    rng = np.random.default_rng(8)
    n = 3000
    times = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(n) * 600, unit="s")
    reference = pd.DataFrame(
        {
            "x": rng.normal(0, 1, n),
            "y": rng.normal(5, 2, n),
            "kind": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]),
            "t": times,
        }
    )
    reference["y"] += reference["x"]
    later = times[-1] + pd.to_timedelta(np.arange(1, 41) * 600, unit="s")
    analysis = pd.DataFrame(
        {
            "x": np.r_[rng.normal(2, 1, 30), [np.nan] * 10],
            "y": np.r_[[np.nan] * 5, rng.normal(5, 2, 35)],
            "kind": np.r_[["zz"] * 10, [None] * 5, ["a"] * 25].astype(object),
            "t": later,
        }
    )
    assign_chunks(reference, "t", RowChunks(300))
    assign_chunks(analysis, "t", RowChunks(10))
    assert_equal_to_nannyml(reference, analysis, ["x", "y", "kind"], ["kind"], RowChunks(10))


def timed(frame: pd.DataFrame, chunking: Any) -> pd.DataFrame:
    frame = frame.assign(t=pd.to_datetime(frame["timestamp"], utc=True))
    assign_chunks(frame, "t", chunking)
    return frame


@pytest.mark.slow  # nannyml, the oracle, takes its time over small chunks
@pytest.mark.parametrize("chunking", [RowChunks(50), ChunkPeriod.parse("1W")], ids=str)
def test_car_loans(chunking: Any) -> None:
    """nannyml's synthetic car loans: text and boolean categories, 2-decimal values."""
    import nannyml as nml

    reference, analysis, _ = nml.load_synthetic_car_loan_dataset()
    features = [
        "car_value",
        "salary_range",
        "debt_to_income_ratio",
        "loan_length",
        "repaid_loan_on_prev_car",
        "size_of_downpayment",
        "driver_tenure",
    ]
    categorical = ["salary_range", "repaid_loan_on_prev_car", "size_of_downpayment"]
    if isinstance(chunking, RowChunks):
        analysis = analysis.head(100 * chunking.size)  # 100 chunks: the oracle is slow
    assert_equal_to_nannyml(
        timed(reference, RowChunks(5_000)),
        timed(analysis, chunking),
        features,
        categorical,
        chunking,
    )


@pytest.mark.slow
def test_us_census() -> None:
    """nannyml's real US census data: pandas `category` columns of numeric codes."""
    import nannyml as nml

    reference, analysis, _ = nml.load_us_census_ma_employment_data()
    features = [c for c in reference.columns if c not in ("id", "year", "employed")]
    features = [c for c in features if c not in ("prediction", "predicted_probability")]
    categorical = [c for c in features if str(reference[c].dtype) == "category"]

    def stamped(frame: pd.DataFrame) -> pd.DataFrame:
        seconds = pd.to_timedelta(np.arange(len(frame)), unit="s")
        return frame.assign(timestamp=pd.to_datetime(frame["year"].astype(str)) + seconds)

    chunking = RowChunks(2_000)
    assert_equal_to_nannyml(
        timed(stamped(reference), chunking),
        timed(stamped(analysis), chunking),
        features,
        categorical,
        chunking,
    )


@pytest.mark.slow
def test_work_from_home_in_chunks_of_100_000_rows() -> None:
    """nannyml's synthetic work-from-home data, twice over: chunks of 100,000 rows."""
    import nannyml as nml

    reference, analysis, _ = nml.load_synthetic_binary_classification_dataset()
    features = [
        "distance_from_office",
        "salary_range",
        "gas_price_per_litre",
        "public_transportation_cost",
        "wfh_prev_workday",
        "workday",
        "tenure",
    ]
    categorical = ["salary_range", "wfh_prev_workday", "workday"]
    later = pd.to_datetime(analysis["timestamp"]) + pd.Timedelta(days=3650)
    analysis = pd.concat([analysis, analysis.assign(timestamp=later.astype(str))])
    chunking = RowChunks(100_000)
    assert_equal_to_nannyml(
        timed(reference, RowChunks(10_000)),
        timed(analysis, chunking),
        features,
        categorical,
        chunking,
    )

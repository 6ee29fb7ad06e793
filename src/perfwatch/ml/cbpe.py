"""The one gateway to nannyml's CBPE: fit once per version, estimate chunks, never NaN.

nannyml is imported here and nowhere else, lazily: it costs seconds to import, sends
usage telemetry unless told not to, and floods pandas deprecation warnings.
"""

import math
import os
import pickle
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from perfwatch.domain.chunks import CHUNK_COLUMN, Chunking
from perfwatch.errors import EstimationError

if TYPE_CHECKING:
    import pandas as pd


@contextmanager
def quiet_nannyml() -> Iterator[Any]:
    """Import nannyml with telemetry off and its warning spam muted; yield the module."""
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
    _mute_nannyml()
    import nannyml

    yield nannyml


@cache
def _mute_nannyml() -> None:
    """Filters installed once and left in place: warnings.catch_warnings() swaps the
    process-wide filter list and is not thread-safe (rows are written on a thread while
    CBPE runs). They name nannyml (and category_encoders, which it calls) and the warnings
    they cause, nothing else."""
    warnings.filterwarnings("ignore", module=r"(nannyml|category_encoders)(\.|$)")
    warnings.filterwarnings("ignore", message="The resulting number of chunks is too low")
    warnings.filterwarnings("ignore", message=".*inplace.*", category=DeprecationWarning)


@dataclass(frozen=True)
class Columns:
    """The column names CBPE needs, as the model's config names them."""

    score: str
    prediction: str
    target: str
    timestamp: str


@dataclass(frozen=True)
class ReferenceFigures:
    """A metric on the reference set: mean realized value over chunks, and nannyml's band."""

    metric: str
    value: float
    band_lower: float | None
    band_upper: float | None


@dataclass(frozen=True)
class Estimate:
    chunk_start: datetime
    chunk_end: datetime
    metric: str
    value: float
    lower: float | None
    upper: float | None
    sampling_error: float | None
    rows: int


def nannyml_chunker(period: Chunking, timestamp: str) -> Any:
    with quiet_nannyml():
        from perfwatch.ml.chunking import PerfwatchChunker

        return PerfwatchChunker(timestamp, period)


def performance_options(columns: Columns, metrics: list[str], period: Chunking) -> dict[str, Any]:
    """What nannyml's CBPE and PerformanceCalculator are told: the columns, the metrics,
    and perfwatch's chunks."""
    return {
        "problem_type": "classification_binary",
        "y_pred_proba": columns.score,
        "y_pred": columns.prediction,
        "y_true": columns.target,
        "timestamp_column_name": columns.timestamp,
        "metrics": metrics,
        "chunker": nannyml_chunker(period, columns.timestamp),
    }


def fit(
    reference: "pd.DataFrame", *, columns: Columns, metrics: list[str], period: Chunking
) -> tuple[Any, list[ReferenceFigures]]:
    """Fit CBPE on the reference set (with perfwatch's chunk column); return it and its figures."""
    with quiet_nannyml() as nml:
        estimator = nml.CBPE(**performance_options(columns, metrics, period))
        frame = reference[
            [columns.score, columns.prediction, columns.target, columns.timestamp, CHUNK_COLUMN]
        ].copy()
        try:
            estimator.fit(frame)
        except Exception as exc:  # nannyml raises many types; all mean "cannot fit"
            raise EstimationError(
                f"nannyml could not fit CBPE on the reference set: {exc}",
                hint="the reference needs both classes and several chunks of data",
            ) from exc
    return estimator, _reference_figures(estimator, metrics)


def _reference_figures(estimator: Any, metrics: list[str]) -> list[ReferenceFigures]:
    figures = []
    data = estimator.result.data
    for metric in estimator.metrics:
        name = metrics[estimator.metrics.index(metric)]
        realized = data[(metric.column_name, "realized")].astype(float)
        value = float(realized.mean())
        if math.isnan(value):
            raise EstimationError(
                f"the reference set gives no {name} value",
                hint="check that the reference has both classes in every chunk",
            )
        figures.append(
            ReferenceFigures(
                name,
                value,
                finite(metric.lower_threshold_value),
                finite(metric.upper_threshold_value),
            )
        )
    return figures


def estimate(
    estimator: Any, rows: "pd.DataFrame", *, columns: Columns, metrics: list[str]
) -> list[Estimate]:
    """Estimate every metric on every chunk in `rows`.

    A value may be NaN: CBPE swallows a failing metric and returns NaN, and only the
    caller knows whether that chunk matters yet.
    """
    frame = rows[[columns.score, columns.prediction, columns.timestamp, CHUNK_COLUMN]]
    with quiet_nannyml():
        try:
            data = estimator.estimate(frame).data
            # a mask, not Result.filter(): filter copies the whole result (0.15 s a call)
            result = data[data[("chunk", "period")] == "analysis"]
        except Exception as exc:
            raise EstimationError(f"nannyml could not estimate: {exc}") from exc
    sizes = frame.groupby(CHUNK_COLUMN).size()
    estimates = []
    for _, chunk in result.iterrows():
        start = chunk[("chunk", "start_date")].to_pydatetime()
        end = chunk[("chunk", "end_date")].to_pydatetime()
        rows_in_chunk = int(sizes.loc[int(start.timestamp()) * 1_000_000_000])
        estimates += [
            Estimate(
                chunk_start=start,
                chunk_end=end,
                metric=name,
                value=float(chunk[(name, "value")]),
                lower=finite(chunk[(name, "lower_confidence_boundary")]),
                upper=finite(chunk[(name, "upper_confidence_boundary")]),
                sampling_error=finite(chunk[(name, "sampling_error")]),
                rows=rows_in_chunk,
            )
            for name in metrics
        ]
    return estimates


def finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) or math.isinf(number) else number


def dumps(estimator: Any) -> bytes:
    return pickle.dumps(estimator)


def loads(payload: bytes) -> Any:
    with quiet_nannyml():
        return pickle.loads(payload)

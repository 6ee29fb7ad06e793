"""Realized performance through nannyml's PerformanceCalculator, on the served scores.

Fitted once per version (on its reference set, for the sampling errors) and kept in
the process; each call calculates the labeled rows of the chunks asked for.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from perfwatch.domain.chunks import CHUNK_COLUMN, Chunking
from perfwatch.errors import EstimationError
from perfwatch.ml.cbpe import Columns, finite, performance_options, quiet_nannyml

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Realized:
    chunk_start: datetime
    metric: str
    value: float  # NaN when the chunk's labels cannot give it (e.g. one class only)
    sampling_error: float | None


def fit_calculator(
    reference: "pd.DataFrame", *, columns: Columns, metrics: list[str], period: Chunking
) -> Any:
    """A PerformanceCalculator fitted on the reference set, chunked as perfwatch chunks."""
    with quiet_nannyml() as nml:
        calculator = nml.PerformanceCalculator(**performance_options(columns, metrics, period))
        try:
            calculator.fit(reference[_needed(columns)])
        except Exception as exc:  # nannyml raises many types; all mean "cannot fit"
            raise EstimationError(
                f"nannyml could not fit its PerformanceCalculator on the reference: {exc}"
            ) from exc
    return calculator


def calculate(
    calculator: Any, labeled: "pd.DataFrame", *, columns: Columns, metrics: list[str]
) -> list[Realized]:
    """Realized metrics per chunk of `labeled` (rows with their target, chunk column set)."""
    with quiet_nannyml():
        try:
            data = calculator.calculate(labeled[_needed(columns)]).data
        except Exception as exc:
            raise EstimationError(f"nannyml could not calculate realized metrics: {exc}") from exc
    data = data[data[("chunk", "period")] == "analysis"]
    results = []
    for _, chunk in data.iterrows():
        start = chunk[("chunk", "start_date")].to_pydatetime()
        for name in metrics:
            value = float(chunk[(name, "value")])
            results.append(
                Realized(
                    chunk_start=start,
                    metric=name,
                    value=value,
                    sampling_error=finite(chunk[(name, "sampling_error")]),
                )
            )
    return results


def _needed(columns: Columns) -> list[str]:
    return [columns.score, columns.prediction, columns.target, columns.timestamp, CHUNK_COLUMN]

"""Feature drift through nannyml: univariate drift per feature (its default method,
Jensen-Shannon distance) and PCA data reconstruction error for the multivariate view.

Both calculators are fitted on a version's reference set and kept in the process.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from perfwatch.domain.chunks import CHUNK_COLUMN, Chunking
from perfwatch.domain.drift import MULTIVARIATE
from perfwatch.errors import EstimationError
from perfwatch.ml.cbpe import finite, nannyml_chunker, quiet_nannyml

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class FeatureDrift:
    chunk_start: datetime
    feature: str  # a feature, or MULTIVARIATE
    method: str  # jensen_shannon | reconstruction_error
    value: float
    threshold: float | None  # nannyml's upper threshold from the reference chunks
    alert: bool  # nannyml's own (raw) alert


@dataclass
class DriftCalculators:
    univariate: Any
    multivariate: Any
    features: list[str]


def fit(
    reference: "pd.DataFrame",
    *,
    features: list[str],
    categorical: list[str],
    timestamp: str,
    period: Chunking,
) -> DriftCalculators:
    frame = reference[[*features, timestamp, CHUNK_COLUMN]]
    with quiet_nannyml() as nml:
        univariate = nml.UnivariateDriftCalculator(
            column_names=features,
            treat_as_categorical=categorical,
            timestamp_column_name=timestamp,
            chunker=nannyml_chunker(period, timestamp),
        )
        multivariate = nml.DataReconstructionDriftCalculator(
            column_names=features,
            timestamp_column_name=timestamp,
            chunker=nannyml_chunker(period, timestamp),
        )
        try:
            univariate.fit(frame)
            multivariate.fit(frame)
        except Exception as exc:  # nannyml raises many types; all mean "cannot fit"
            raise EstimationError(f"nannyml could not fit its drift calculators: {exc}") from exc
    return DriftCalculators(univariate, multivariate, features)


def calculate(
    calculators: DriftCalculators, rows: "pd.DataFrame", *, timestamp: str
) -> list[FeatureDrift]:
    """Drift of every feature, and of all together, on every chunk in `rows`."""
    frame = rows[[*calculators.features, timestamp, CHUNK_COLUMN]]
    with quiet_nannyml():
        try:
            univariate = calculators.univariate.calculate(frame).data
            multivariate = calculators.multivariate.calculate(frame).data
        except Exception as exc:
            raise EstimationError(f"nannyml could not calculate feature drift: {exc}") from exc
    results = []
    for _, chunk in univariate[univariate[("chunk", "chunk", "period")] == "analysis"].iterrows():
        start = chunk[("chunk", "chunk", "start_date")].to_pydatetime()
        for feature in calculators.features:
            results.append(
                FeatureDrift(
                    start,
                    feature,
                    "jensen_shannon",
                    float(chunk[(feature, "jensen_shannon", "value")]),
                    finite(chunk[(feature, "jensen_shannon", "upper_threshold")]),
                    bool(chunk[(feature, "jensen_shannon", "alert")]),
                )
            )
    analysis = multivariate[multivariate[("chunk", "period")] == "analysis"]
    for _, chunk in analysis.iterrows():
        results.append(
            FeatureDrift(
                chunk[("chunk", "start_date")].to_pydatetime(),
                MULTIVARIATE,
                "reconstruction_error",
                float(chunk[("reconstruction_error", "value")]),
                finite(chunk[("reconstruction_error", "upper_threshold")]),
                bool(chunk[("reconstruction_error", "alert")]),
            )
        )
    return results

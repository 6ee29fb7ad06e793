"""Feature drift through nannyml: univariate drift per feature (its default method,
Jensen-Shannon distance) and PCA data reconstruction error for the multivariate view.

Both calculators are fitted on a version's reference set when it is registered; a cycle
applies what they learnt without nannyml (ml.chunk_drift), and `calculate` is the oracle
`perfwatch run --verify` compares with.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from perfwatch.domain.chunks import CHUNK_COLUMN, Chunking
from perfwatch.domain.drift import MULTIVARIATE
from perfwatch.errors import EstimationError
from perfwatch.ml.cbpe import finite, nannyml_chunker, quiet_nannyml
from perfwatch.ml.chunk_drift import FeatureDrift, FittedDrift, fitted_for

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class DriftCalculators:
    univariate: Any
    multivariate: Any
    features: list[str]
    categorical: list[str]


def fit(
    reference: "pd.DataFrame",
    *,
    features: list[str],
    categorical: list[str],
    timestamp: str,
    period: Chunking,
) -> DriftCalculators:
    frame = _declared(reference[[*features, timestamp, CHUNK_COLUMN]], categorical)
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
    return DriftCalculators(univariate, multivariate, features, categorical)


def _declared(frame: "pd.DataFrame", categorical: list[str]) -> "pd.DataFrame":
    """The categorical columns as objects: nannyml's PCA calculator tells categories by
    dtype, and knows neither pandas 3's text dtype ("str": it fails on the text) nor that a
    column of numeric codes is categorical when the config says so."""
    return frame.astype({name: object for name in categorical}) if categorical else frame


def fitted(
    reference: "pd.DataFrame",
    *,
    features: list[str],
    categorical: list[str],
    timestamp: str,
    period: Chunking,
) -> FittedDrift:
    """What both calculators learn on the reference, as plain numbers."""
    calculators = fit(
        reference, features=features, categorical=categorical, timestamp=timestamp, period=period
    )
    return FittedDrift.of(
        calculators.univariate,
        calculators.multivariate,
        fitted_for(features, categorical, period.describe()),
    )


def calculate(
    calculators: DriftCalculators, rows: "pd.DataFrame", *, timestamp: str
) -> list[FeatureDrift]:
    """Drift of every feature, and of all together, on every chunk in `rows`."""
    frame = _declared(
        rows[[*calculators.features, timestamp, CHUNK_COLUMN]], calculators.categorical
    )
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

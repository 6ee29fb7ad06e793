"""Feature drift for every chunk at once: nannyml fits, perfwatch applies.

nannyml's UnivariateDriftCalculator fits, per feature, the reference's distribution: for
a continuous feature the `doane` histogram bin edges and the share of reference rows in
each bin, for a categorical one the reference's values and their shares, and the
thresholds from the reference chunks. `FittedFeature.of` keeps those as plain numbers;
`jensen_shannon` then computes what nannyml 0.13.1's Jensen-Shannon methods compute chunk
by chunk (drift/univariate/methods.py) for all chunks in one pass: the chunk's shares in
the same bins (missing values left out; what falls outside every reference bin in an
extra bin, as nannyml adds one), and scipy's Jensen-Shannon distance in base 2.
`FittedReconstruction` and `reconstruction_error` do the same for nannyml's PCA data
reconstruction (drift/multivariate/data_reconstruction). Equality with nannyml is a test
(tests/ml/test_chunk_drift.py); `FittedDrift` holds both as plain numbers, stored with
the version, and `measure` gives a cycle every chunk's figures from them.
"""

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from perfwatch.domain.chunks import CHUNK_COLUMN, moment
from perfwatch.domain.drift import MULTIVARIATE
from perfwatch.ml.chunk_metrics import Chunks

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@dataclass(frozen=True)
class FeatureDrift:
    chunk_start: datetime
    feature: str  # a feature, or MULTIVARIATE
    method: str  # jensen_shannon | reconstruction_error
    value: float
    threshold: float | None  # nannyml's upper threshold from the reference chunks
    alert: bool  # nannyml's own (raw) alert


@dataclass(frozen=True)
class FittedFeature:
    """What nannyml's Jensen-Shannon method learnt of one feature on the reference."""

    name: str
    categorical: bool
    bins: tuple[Any, ...]  # continuous: the bin edges; categorical: the reference's values
    shares: tuple[float, ...]  # the share of reference rows in each bin (or value)
    lower_threshold: float | None
    upper_threshold: float | None

    @classmethod
    def all_of(cls, calculator: Any) -> tuple["FittedFeature", ...]:
        """Every feature of a fitted nannyml UnivariateDriftCalculator (jensen_shannon)."""
        kinds = [(name, False) for name in calculator.continuous_column_names]
        kinds += [(name, True) for name in calculator.categorical_column_names]
        features = []
        for name, categorical in kinds:
            (method,) = calculator._column_to_models_mapping[name]  # one method: jensen_shannon
            features.append(
                cls(
                    name=name,
                    categorical=categorical,
                    bins=tuple(v.item() if hasattr(v, "item") else v for v in method._bins),
                    shares=tuple(float(v) for v in method._reference_proba_in_bins),
                    lower_threshold=method.lower_threshold_value,
                    upper_threshold=method.upper_threshold_value,
                )
            )
        return tuple(features)

    def alert(self, distances: "np.ndarray") -> "np.ndarray":
        """nannyml's raw alert: outside the reference chunks' thresholds."""
        import numpy as np

        low = -np.inf if self.lower_threshold is None else self.lower_threshold
        high = np.inf if self.upper_threshold is None else self.upper_threshold
        return (distances < low) | (distances > high)


def jensen_shannon(feature: FittedFeature, values: "np.ndarray", chunks: Chunks) -> "np.ndarray":
    """The Jensen-Shannon distance (base 2) of each chunk's values, in chunk order, from
    the reference; NaN for a chunk with no value."""
    import numpy as np
    from scipy.spatial.distance import jensenshannon

    bin_of_row, present = _bins_of(feature, values)
    chunk_of_row = chunks.owners
    width = len(feature.shares)
    inside = present & (bin_of_row >= 0)
    counts = np.bincount(
        chunk_of_row[inside] * width + bin_of_row[inside], minlength=len(chunks.sizes) * width
    ).reshape(len(chunks.sizes), width)
    measured = np.bincount(chunk_of_row[present], minlength=len(chunks.sizes)).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = counts / measured[:, None]
        leftover = 1 - shares.sum(axis=1)
    leftover = np.where(leftover > 0, leftover, 0.0)  # nannyml adds the bin only then
    reference = np.r_[np.asarray(feature.shares, dtype=float), 0.0]
    data = np.c_[shares, leftover]
    distances = jensenshannon(np.broadcast_to(reference, data.shape), data, axis=1, base=2)
    return np.where(measured > 0, distances, np.nan)


def _bins_of(feature: FittedFeature, values: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
    """Each value's bin (-1 outside every bin) and whether it is present (not missing)."""
    import numpy as np
    import pandas as pd

    present = ~pd.isna(values)
    if feature.categorical:
        index = {value: position for position, value in enumerate(feature.bins)}
        bins = np.fromiter((index.get(v, -1) for v in values), dtype=np.int64, count=len(values))
        return bins, np.asarray(present)
    edges = np.asarray(feature.bins, dtype=float)
    numbers = np.asarray(values, dtype=float)
    bins = np.searchsorted(edges, numbers, side="right") - 1
    bins[numbers == edges[-1]] = len(edges) - 2  # np.histogram: the last bin is closed
    bins[(numbers < edges[0]) | (numbers > edges[-1])] = -1
    return bins, np.asarray(present)


@dataclass(frozen=True)
class FittedReconstruction:
    """What nannyml's DataReconstructionDriftCalculator learnt on the reference: how a
    row becomes numbers (missing values imputed, categories as their reference
    frequency, 0 when unseen, then standardized) and the principal components it is
    reconstructed from; the thresholds from the reference chunks."""

    columns: tuple[str, ...]  # in the order the calculator encodes them
    categorical: tuple[str, ...]
    fill: tuple[Any, ...]  # per column: the imputed value (most frequent, or the mean)
    frequencies: tuple[tuple[tuple[Any, float], ...], ...]  # per categorical column
    center: tuple[float, ...]  # the scaler's mean and scale, per column
    scale: tuple[float, ...]
    pca_mean: tuple[float, ...]
    components: tuple[tuple[float, ...], ...]
    lower_threshold: float | None
    upper_threshold: float | None

    @classmethod
    def of(cls, calculator: Any) -> "FittedReconstruction":
        categorical = tuple(calculator.categorical_column_names)
        continuous = tuple(calculator.continuous_column_names)
        filled: dict[str, Any] = {}
        if categorical:
            filled |= dict(
                zip(categorical, calculator._imputer_categorical.statistics_, strict=True)
            )
        if continuous:
            filled |= dict(zip(continuous, calculator._imputer_continuous.statistics_, strict=True))
        columns = tuple(calculator.column_names)
        mapping = calculator._encoder.mapping
        return cls(
            columns=columns,
            categorical=categorical,
            fill=tuple(_plain(filled[c]) for c in columns),
            frequencies=tuple(
                tuple((_plain(k), float(v)) for k, v in mapping[c].items()) for c in categorical
            ),
            center=tuple(float(v) for v in calculator._scaler.mean_),
            scale=tuple(float(v) for v in calculator._scaler.scale_),
            pca_mean=tuple(float(v) for v in calculator._pca.mean_),
            components=tuple(tuple(float(v) for v in row) for row in calculator._pca.components_),
            lower_threshold=calculator.lower_threshold_value,
            upper_threshold=calculator.upper_threshold_value,
        )

    def alert(self, errors: "np.ndarray") -> "np.ndarray":
        """nannyml's raw alert: not strictly between the thresholds."""
        import numpy as np

        low = -np.inf if self.lower_threshold is None else self.lower_threshold
        high = np.inf if self.upper_threshold is None else self.upper_threshold
        return ~((low < errors) & (errors < high))


def reconstruction_error(
    fitted: FittedReconstruction, rows: "pd.DataFrame", chunks: Chunks
) -> "np.ndarray":
    """Per chunk, the mean distance of its rows (in chunk order) from their PCA
    reconstruction, as nannyml measures it."""
    import numpy as np

    numbers = np.empty((len(rows), len(fitted.columns)))
    frequencies = dict(zip(fitted.categorical, fitted.frequencies, strict=True))
    for position, (column, fill) in enumerate(zip(fitted.columns, fitted.fill, strict=True)):
        values = rows[column].to_numpy()
        if column in frequencies:
            share = dict(frequencies[column])
            numbers[:, position] = [share.get(fill if _missing(v) else v, 0.0) for v in values]
        else:
            values = values.astype(float)
            numbers[:, position] = np.where(np.isnan(values), fill, values)
    scaled = (numbers - np.asarray(fitted.center)) / np.asarray(fitted.scale)
    components, mean = np.asarray(fitted.components), np.asarray(fitted.pca_mean)
    projected = scaled @ components.T - mean.reshape(1, -1) @ components.T
    distance = np.linalg.norm(scaled - (projected @ components + mean), axis=1)
    return chunks.sums(distance) / chunks.sizes


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


@dataclass(frozen=True)
class FittedDrift:
    """Both drift calculators as nannyml fitted them on a version's reference, for the
    features and chunking named in `fitted_for` (a config that changes them refits)."""

    fitted_for: str
    features: tuple[FittedFeature, ...]
    reconstruction: FittedReconstruction

    @classmethod
    def of(cls, univariate: Any, multivariate: Any, fitted_for: str) -> "FittedDrift":
        return cls(
            fitted_for, FittedFeature.all_of(univariate), FittedReconstruction.of(multivariate)
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> "FittedDrift":
        data = json.loads(text)
        features = tuple(
            FittedFeature(**(f | {"bins": tuple(f["bins"]), "shares": tuple(f["shares"])}))
            for f in data["features"]
        )
        fields = {k: _tuples(v) for k, v in data["reconstruction"].items()}
        return cls(data["fitted_for"], features, FittedReconstruction(**fields))


def fitted_for(features: list[str], categorical: list[str], chunking: str) -> str:
    """What a FittedDrift depends on in the config, as one comparable text."""
    return json.dumps({"features": features, "categorical": categorical, "chunking": chunking})


def measure(fitted: FittedDrift, rows: "pd.DataFrame") -> list[FeatureDrift]:
    """Every feature's drift, and all features' together, on every chunk in `rows` (with
    the chunk column), chunk by chunk as nannyml gives them."""
    chunks = Chunks.of(rows[CHUNK_COLUMN].to_numpy(dtype="int64"))
    starts = [moment(int(ns)) for ns in chunks.starts_ns]
    results = []
    for feature in fitted.features:
        distances = jensen_shannon(feature, rows[feature.name].to_numpy()[chunks.order], chunks)
        results += _figures(starts, feature.name, "jensen_shannon", distances, feature)
    errors = reconstruction_error(fitted.reconstruction, rows.iloc[chunks.order], chunks)
    results += _figures(starts, MULTIVARIATE, "reconstruction_error", errors, fitted.reconstruction)
    return results


def _figures(
    starts: list[datetime],
    name: str,
    method: str,
    values: "np.ndarray",
    fitted: FittedFeature | FittedReconstruction,
) -> list[FeatureDrift]:
    alerts = fitted.alert(values)
    threshold = fitted.upper_threshold
    return [
        FeatureDrift(start, name, method, float(value), threshold, bool(alert))
        for start, value, alert in zip(starts, values, alerts, strict=True)
    ]


def _tuples(value: Any) -> Any:
    """JSON's lists back to the tuples a fitted dataclass holds."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value

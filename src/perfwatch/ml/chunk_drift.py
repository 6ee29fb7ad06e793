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
import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from perfwatch.domain.chunks import CHUNK_COLUMN, moment
from perfwatch.domain.drift import MULTIVARIATE, DriftMethods
from perfwatch.ingest.contract import Contract
from perfwatch.ml.chunk_metrics import Chunks

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

NANNYML = DriftMethods()  # Jensen-Shannon and PCA reconstruction, as nannyml computes them


@dataclass(frozen=True)
class FeatureDrift:
    chunk_start: datetime
    feature: str  # a feature, or MULTIVARIATE
    method: str  # jensen_shannon | reconstruction_error
    value: float
    threshold: float | None  # the upper threshold from the reference chunks, if any
    alert: bool  # the method's own (raw) alert: nannyml's, or the corrected p-value's
    p_value: float | None = None  # a test's, false-discovery corrected (ml.drift_tests)


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


def jensen_shannon(feature: FittedFeature, values: "pd.Series", chunks: Chunks) -> "np.ndarray":
    """The Jensen-Shannon distance (base 2) of each chunk's values (in row order) from the
    reference, chunk by chunk; NaN for a chunk with no value."""
    import numpy as np

    width = len(feature.shares)  # then one slot for values outside every bin, one for missing
    slots = width + 2
    counts = np.bincount(
        chunks.of_row * slots + _bins_of(feature, values), minlength=len(chunks.sizes) * slots
    ).reshape(len(chunks.sizes), slots)
    measured = counts[:, : width + 1].sum(axis=1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = counts[:, :width] / measured[:, None]
        leftover = 1 - shares.sum(axis=1)  # as nannyml reckons the extra bin's share
    leftover = np.where(leftover > 0, leftover, 0.0)  # nannyml adds the bin only then
    reference = np.r_[np.asarray(feature.shares, dtype=float), 0.0]
    data = np.c_[shares, leftover]
    return np.where(measured > 0, _jensen_shannon_base_2(reference, data), np.nan)


def _jensen_shannon_base_2(p: "np.ndarray", q: "np.ndarray") -> "np.ndarray":
    """scipy.spatial.distance.jensenshannon(p, q, axis=1, base=2), row by row, in scipy's
    order of operations (scipy costs a cold `run --once` 0.3 s to import)."""
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.broadcast_to(p, q.shape) / np.sum(p)
        q = q / np.sum(q, axis=1, keepdims=True)
        m = (p + q) / 2.0
        js = np.sum(_relative_entropy(p, m), axis=1) + np.sum(_relative_entropy(q, m), axis=1)
    return np.sqrt(js / np.log(2) / 2.0)


def _relative_entropy(x: "np.ndarray", y: "np.ndarray") -> "np.ndarray":
    """scipy.special.rel_entr: x log(x / y), 0 where x is 0, inf where only y is."""
    import numpy as np

    inside = np.where((x == 0) & (y >= 0), 0.0, np.inf)
    return np.where((x > 0) & (y > 0), x * np.log(x / y), inside)


def _bins_of(feature: FittedFeature, values: "pd.Series") -> "np.ndarray":
    """Each value's bin; past the bins, one slot for values outside every bin and one for
    missing values."""
    import numpy as np

    width = len(feature.shares)
    if feature.categorical:
        bins = _positions(feature.bins, values)
        bins[bins < 0] = width
    else:
        edges = np.asarray(feature.bins, dtype=float)
        numbers = values.to_numpy(dtype=float, na_value=np.nan)
        bins = np.searchsorted(edges, numbers, side="right") - 1  # beyond the last: width
        bins[numbers == edges[-1]] = width - 1  # np.histogram: the last bin is closed
        bins[bins < 0] = width
    bins[values.isna().to_numpy()] = width + 1
    return bins


def _positions(keys: tuple[Any, ...], values: "pd.Series") -> "np.ndarray":
    """Each value's position among `keys` (-1 where it is none of them, or missing),
    matched as a Python dict matches keys (1 == 1.0 == True): one hash lookup per distinct
    value, whatever the column's dtype."""
    import numpy as np
    import pandas as pd

    codes, distinct = pd.factorize(values, use_na_sentinel=True)
    index = pd.Index(list(keys), dtype=object)
    found = np.r_[index.get_indexer(pd.Index(np.asarray(distinct, dtype=object))), -1]
    return found[codes]  # code -1 (missing) takes the last entry


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


# rows reconstructed at once: a block's matrices stay small enough for malloc to reuse
# (matrices of every row are fresh pages each time, and first touches cost more than the
# arithmetic)
BLOCK_ROWS = 65_536


def reconstruction_error(
    fitted: FittedReconstruction, rows: "pd.DataFrame", chunks: Chunks
) -> "np.ndarray":
    """Per chunk, the mean distance of its rows (in row order) from their PCA
    reconstruction, as nannyml measures it."""
    import numpy as np

    distance = np.empty(len(rows))
    for start in range(0, len(rows), BLOCK_ROWS):
        block = _encoded(fitted, rows.iloc[start : start + BLOCK_ROWS])
        distance[start : start + len(block)] = _reconstruction_distance(fitted, block)
    return np.bincount(chunks.of_row, weights=distance, minlength=len(chunks.sizes)) / chunks.sizes


def _encoded(fitted: FittedReconstruction, rows: "pd.DataFrame") -> "np.ndarray":
    """The rows as the calculator's numbers: missing values imputed, a category as its
    reference frequency (0 when unseen)."""
    import numpy as np

    numbers = np.empty((len(rows), len(fitted.columns)))
    frequencies = dict(zip(fitted.categorical, fitted.frequencies, strict=True))
    for position, (column, fill) in enumerate(zip(fitted.columns, fitted.fill, strict=True)):
        values = rows[column]
        if column in frequencies:
            keys, shares = (
                zip(*frequencies[column], strict=True) if frequencies[column] else ((), ())
            )
            found = _positions(keys, values)
            found[values.isna().to_numpy()] = keys.index(fill) if fill in keys else -1
            numbers[:, position] = np.r_[shares, 0.0][found]  # -1, unseen: the 0 at the end
        else:
            numbers[:, position] = values.to_numpy(dtype=float, na_value=np.nan)
            np.copyto(numbers[:, position], fill, where=np.isnan(numbers[:, position]))
    return numbers


def _reconstruction_distance(fitted: FittedReconstruction, numbers: "np.ndarray") -> "np.ndarray":
    """Each encoded row's distance from its reconstruction (standardized, projected on the
    components and back), in sklearn's order of operations: errors near 0 (as many
    components as columns) meet thresholds near 0 at the last bit."""
    import numpy as np

    numbers -= np.asarray(fitted.center)
    numbers /= np.asarray(fitted.scale)
    components, mean = np.asarray(fitted.components), np.asarray(fitted.pca_mean)
    projected = numbers @ components.T - mean.reshape(1, -1) @ components.T
    reconstructed = projected @ components + mean
    return np.linalg.norm(numbers - reconstructed, axis=1)


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


def measure(
    fitted: FittedDrift,
    rows: "pd.DataFrame",
    methods: DriftMethods = NANNYML,
    reference: "Reference | None" = None,
) -> list[FeatureDrift]:
    """Every feature's drift, and all features' together, on every chunk in `rows` (with
    the chunk column): by nannyml's Jensen-Shannon and PCA reconstruction as nannyml
    gives them, or by the tests `methods` names (ml.drift_tests, against `reference`)."""
    chunks = Chunks.of(rows[CHUNK_COLUMN].to_numpy(dtype="int64"))
    starts = [moment(int(ns)) for ns in chunks.starts_ns]
    results: list[FeatureDrift] = []
    tested: list[FeatureDrift] = []
    for feature in fitted.features:
        method = methods.categorical if feature.categorical else methods.continuous
        if method == "jensen_shannon":
            distances = jensen_shannon(feature, rows[feature.name], chunks)
            results += _figures(starts, feature.name, "jensen_shannon", distances, feature)
        else:
            assert reference is not None, "a test needs the reference rows"
            tested += _tested(starts, feature.name, method, reference, rows, chunks)
    results += _corrected(tested, methods.level)
    if methods.multivariate == "pca":
        errors = reconstruction_error(fitted.reconstruction, rows, chunks)
        fit = fitted.reconstruction
        results += _figures(starts, MULTIVARIATE, "reconstruction_error", errors, fit)
    else:
        assert reference is not None, "a test needs the reference rows"
        results += _together(starts, methods, reference, rows, chunks)
    return results


@dataclass(frozen=True)
class Reference:
    """A version's reference rows (with their chunk column) and validation contract: what
    the tests of ml.drift_tests compare each chunk with."""

    rows: "pd.DataFrame"
    contract: Contract


def _tested(
    starts: list[datetime],
    name: str,
    method: str,
    reference: Reference,
    rows: "pd.DataFrame",
    chunks: Chunks,
) -> list[FeatureDrift]:
    from perfwatch.ml import drift_tests

    reference_chunks = reference.rows[CHUNK_COLUMN].to_numpy()
    figures = drift_tests.univariate(
        method, reference.rows[name], reference_chunks, rows[name], chunks
    )
    return [
        FeatureDrift(
            start,
            name,
            method,
            f.value,
            f.threshold,
            f.threshold is not None and f.value > f.threshold,
            f.p_value,
        )
        for start, f in zip(starts, figures, strict=True)
    ]


def _corrected(tested: list[FeatureDrift], level: float) -> list[FeatureDrift]:
    """Each chunk's p-values corrected together across its features (Benjamini-Hochberg):
    a feature alerts when its corrected p-value is under `level`."""
    from dataclasses import replace

    from perfwatch.ml.two_sample import false_discovery

    corrected = []
    for start in sorted({t.chunk_start for t in tested}):
        chunk = [t for t in tested if t.chunk_start == start]
        tests = [t for t in chunk if t.p_value is not None]
        adjusted = false_discovery([t.p_value or 0.0 for t in tests])
        for test, p in zip(tests, adjusted, strict=True):
            corrected.append(replace(test, p_value=p, alert=bool(p < level)))
        corrected += [t for t in chunk if t.p_value is None]
    return corrected


def _together(
    starts: list[datetime],
    methods: DriftMethods,
    reference: Reference,
    rows: "pd.DataFrame",
    chunks: Chunks,
) -> list[FeatureDrift]:
    from perfwatch.ml import drift_tests

    figures = drift_tests.multivariate(
        methods.multivariate,
        reference.contract,
        reference.rows,
        rows,
        chunks,
        sample=methods.sample,
        permutations=methods.permutations,
    )
    return [
        FeatureDrift(
            start,
            MULTIVARIATE,
            methods.multivariate,
            f.value,
            None,
            f.p_value is not None and f.p_value < methods.level,
            f.p_value,
        )
        for start, f in zip(starts, figures, strict=True)
    ]


def _figures(
    starts: list[datetime],
    name: str,
    method: str,
    values: "np.ndarray",
    fitted: FittedFeature | FittedReconstruction,
) -> list[FeatureDrift]:
    alerts = fitted.alert(values)
    upper = fitted.upper_threshold
    threshold = upper if upper is not None and math.isfinite(upper) else None  # as stored
    return [
        FeatureDrift(start, name, method, float(value), threshold, bool(alert))
        for start, value, alert in zip(starts, values, alerts, strict=True)
    ]


def _tuples(value: Any) -> Any:
    """JSON's lists back to the tuples a fitted dataclass holds."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value

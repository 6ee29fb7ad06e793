"""CBPE's per-chunk arithmetic for every chunk at once: nannyml fits, perfwatch applies.

nannyml fits CBPE once per version (the calibration, each metric's sampling-error
constants and reference thresholds); `Fitted.of` keeps those figures as plain
numbers, so applying them needs neither nannyml nor a pickle. `estimate` then computes
what nannyml 0.13.1's `CBPE.estimate` computes chunk by chunk
(performance_estimation/confidence_based/metrics.py), for all chunks in one pass:
calibrate once, sum the expected confusion matrix per chunk, sort once for the ranking
metrics, with nannyml's formulas, its rounding of cumulative sums to 5 decimals and its
NaN where a metric cannot be given. Equality with nannyml is a test
(tests/ml/test_chunk_metrics.py), and `perfwatch run --verify` checks it on a user's
own data.
"""

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from perfwatch.domain.chunks import CHUNK_COLUMN, SECOND_NS, Chunking, ChunkPeriod
from perfwatch.errors import EstimationError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from perfwatch.ml.cbpe import Columns, Estimate
    from perfwatch.ml.realized import Realized

TOLERANCE = 1e-9  # how far a figure may be from nannyml's (`perfwatch run --verify`)
SAMPLING_ERROR_RANGE = 3  # nannyml's band: the estimate ± 3 sampling errors
RANKED = ("roc_auc", "average_precision")  # need the rows in score order
DECIMALS = 5  # nannyml rounds the cumulative sums of the ranked metrics so


@dataclass(frozen=True)
class FittedMetric:
    """What CBPE learnt of one metric on the reference set."""

    name: str
    # the sampling error's constants: (std, fraction of relevant rows), for
    # average_precision (std, bootstrap sample size)
    std: float
    scale: float
    lower_limit: float | None  # the metric's range: the band is clipped to it
    upper_limit: float | None


@dataclass(frozen=True)
class Fitted:
    """What nannyml fitted for a version, as plain numbers: CBPE's isotonic calibration
    (None when nannyml found the scores calibrated already) and its metrics, and the
    PerformanceCalculator's metrics (their own sampling-error constants: average
    precision's come from a random bootstrap)."""

    calibration_x: tuple[float, ...] | None
    calibration_y: tuple[float, ...] | None
    metrics: tuple[FittedMetric, ...]
    realized: tuple[FittedMetric, ...] = ()

    @classmethod
    def of(cls, estimator: Any, calculator: Any = None) -> "Fitted":
        """The figures of a fitted nannyml CBPE and PerformanceCalculator (binary). Without
        a calculator, realized metrics take CBPE's constants: nannyml computes both from
        the same reference rows with the same functions (average precision's from another
        draw of the same bootstrap), so no PerformanceCalculator needs fitting."""
        x = y = None
        if estimator.needs_calibration:
            regressor = estimator.calibrator._regressor  # sklearn's IsotonicRegression
            x = tuple(float(v) for v in regressor.X_thresholds_)
            y = tuple(float(v) for v in regressor.y_thresholds_)
        metrics = tuple(_fitted_metric(metric) for metric in estimator.metrics)
        realized = metrics if calculator is None else tuple(map(_fitted_metric, calculator.metrics))
        return cls(x, y, metrics, realized)

    def to_json(self) -> str:
        return json.dumps(asdict(self), allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> "Fitted":
        data = json.loads(text)
        for key in ("metrics", "realized"):
            data[key] = tuple(FittedMetric(**m) for m in data.get(key, ()))
        for key in ("calibration_x", "calibration_y"):
            data[key] = tuple(data[key]) if data[key] is not None else None
        return cls(**data)

    def calibrate(self, scores: "np.ndarray") -> "np.ndarray":
        """As sklearn's IsotonicRegression(out_of_bounds="clip").predict: linear between
        the breakpoints, flat beyond them."""
        import numpy as np

        if self.calibration_x is None or self.calibration_y is None:
            return scores
        x, y = np.asarray(self.calibration_x), np.asarray(self.calibration_y)
        if len(y) == 1:
            return np.full(len(scores), y[0])
        return np.interp(np.clip(scores, x[0], x[-1]), x, y)


def _fitted_metric(metric: Any) -> FittedMetric:
    components = metric._sampling_error_components  # accuracy's has no fraction: (std,)
    return FittedMetric(
        name=metric.column_name,
        std=float(components[0]),
        scale=float(components[1]) if len(components) > 1 else 1.0,
        lower_limit=metric.lower_threshold_value_limit,
        upper_limit=metric.upper_threshold_value_limit,
    )


@dataclass(frozen=True)
class Chunks:
    """Rows grouped by chunk: the order that groups them (rows keep their order within a
    chunk, as nannyml's chunker keeps it), and each chunk's start (ns) and span."""

    order: "np.ndarray"
    starts_ns: "np.ndarray"
    offsets: "np.ndarray"  # where each chunk's rows begin in `order`, and the end

    @classmethod
    def of(cls, chunk_column: "np.ndarray") -> "Chunks":
        import numpy as np

        order = np.argsort(chunk_column, kind="stable")
        grouped = chunk_column[order]
        first = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
        return cls(order, grouped[first], np.r_[first, len(grouped)])

    @property
    def sizes(self) -> "np.ndarray":
        import numpy as np

        return np.diff(self.offsets)

    @cached_property
    def of_row(self) -> "np.ndarray":
        """Each row's chunk (its index among the chunks), rows in their given order:
        counting per chunk needs no reordering."""
        import numpy as np

        chunk_of_row = np.empty(len(self.order), dtype=np.int64)
        chunk_of_row[self.order] = self.owners
        return chunk_of_row

    @property
    def owners(self) -> "np.ndarray":
        """Each row's chunk (its index among the chunks), rows in chunk order."""
        import numpy as np

        return np.repeat(np.arange(len(self.sizes)), self.sizes)

    @property
    def firsts(self) -> "np.ndarray":
        """Each row's chunk's first position, rows in chunk order."""
        import numpy as np

        return np.repeat(self.offsets[:-1], self.sizes)

    def sums(self, values: "np.ndarray") -> "np.ndarray":
        """Per chunk, the sum of values (given in chunk order)."""
        import numpy as np

        return np.add.reduceat(values, self.offsets[:-1]) if len(values) else np.zeros(0)


def estimate(
    fitted: Fitted,
    rows: "pd.DataFrame",
    *,
    columns: "Columns",
    metrics: list[str],
    chunking: Chunking,
) -> list["Estimate"]:
    """Estimate every metric on every chunk in `rows` (with the chunk column), as nannyml
    does with the same fitted CBPE: one Estimate per chunk and metric, chunk by chunk."""
    import numpy as np

    from perfwatch.ml.cbpe import Estimate, finite

    scores = rows[columns.score].to_numpy(dtype="float64")
    predictions = rows[columns.prediction].to_numpy(dtype="float64")
    if np.isnan(scores).any() or not np.isin(predictions, (0.0, 1.0)).all():
        raise EstimationError("scores must be numbers and predictions 0 or 1 to estimate")
    chunks = Chunks.of(rows[CHUNK_COLUMN].to_numpy(dtype="int64"))
    figures = estimate_chunks(fitted, scores[chunks.order], predictions[chunks.order], chunks)
    _require(figures, metrics)
    ends = _chunk_ends(rows[columns.timestamp], chunks, chunking)
    estimates = []
    for index, start_ns in enumerate(chunks.starts_ns):
        start = datetime.fromtimestamp(int(start_ns) // SECOND_NS, UTC)
        for name in metrics:
            value, error, lower, upper = (figure[index] for figure in figures[name])
            estimates.append(
                Estimate(
                    chunk_start=start,
                    chunk_end=ends[index],
                    metric=name,
                    value=float(value),
                    lower=finite(lower),
                    upper=finite(upper),
                    sampling_error=finite(error),
                    rows=int(chunks.sizes[index]),
                )
            )
    return estimates


def _require(figures: dict[str, Any], metrics: list[str]) -> None:
    missing = [name for name in metrics if name not in figures]
    if missing:
        raise EstimationError(
            f"{missing[0]} was not fitted for this version (its metrics are fixed when it is"
            " registered)",
            hint="register the model again after changing its metrics",
        )


def estimate_chunks(
    fitted: Fitted, scores: "np.ndarray", predictions: "np.ndarray", chunks: Chunks
) -> dict[str, tuple["np.ndarray", "np.ndarray", "np.ndarray", "np.ndarray"]]:
    """metric -> (estimate, sampling error, lower, upper) per chunk, from the scores and
    0/1 predictions of the rows in chunk order."""
    return expected_metrics(fitted, fitted.calibrate(scores), scores, predictions, chunks)


def expected_metrics(
    fitted: Fitted,
    probabilities: "np.ndarray",
    scores: "np.ndarray",
    predictions: "np.ndarray",
    chunks: Chunks,
    ranking: "np.ndarray | None" = None,
) -> dict[str, tuple["np.ndarray", "np.ndarray", "np.ndarray", "np.ndarray"]]:
    """As estimate_chunks, from each row's probability of being positive (CBPE's: the
    calibrated score; a delay-adjusted estimate's: 0 or 1 where the label is known).
    `ranking`: the probabilities the ranking metrics take, where they differ (equal
    within rows of equal score)."""
    import numpy as np

    expected = _expected_confusion(probabilities, predictions, chunks)
    ranks = probabilities if ranking is None else ranking
    ranked = _ranked(ranks, scores, chunks) if _wants_ranking(fitted) else {}
    sizes = chunks.sizes.astype("float64")
    figures = {}
    for metric in fitted.metrics:
        value = ranked[metric.name] if metric.name in RANKED else expected[metric.name]
        error = _sampling_error(metric, sizes)
        upper_limit = np.inf if metric.upper_limit is None else metric.upper_limit
        lower_limit = -np.inf if metric.lower_limit is None else metric.lower_limit
        upper = np.minimum(upper_limit, value + SAMPLING_ERROR_RANGE * error)
        lower = np.maximum(lower_limit, value - SAMPLING_ERROR_RANGE * error)
        figures[metric.name] = (value, error, lower, upper)
    return figures


def _sampling_error(metric: FittedMetric, sizes: "np.ndarray") -> "np.ndarray":
    """nannyml's sampling error of a metric on chunks of these sizes: the reference's std
    over the square root of the relevant rows (average precision: its bootstrap's std,
    scaled from the bootstrap sample's size)."""
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        if metric.name == "average_precision":
            return metric.std * np.sqrt(metric.scale / sizes)
        return metric.std / np.sqrt(sizes * metric.scale)


def _wants_ranking(fitted: Fitted) -> bool:
    return any(m.name in RANKED for m in fitted.metrics)


def _expected_confusion(
    calibrated: "np.ndarray", predictions: "np.ndarray", chunks: Chunks
) -> dict[str, "np.ndarray"]:
    """The confusion-matrix metrics, from the expected counts per chunk (a row predicted
    1 is a true positive with its calibrated probability, a false one otherwise)."""
    import numpy as np

    positive = predictions == 1
    tp = chunks.sums(np.where(positive, calibrated, 0.0))
    fp = chunks.sums(np.where(positive, 1 - calibrated, 0.0))
    fn = chunks.sums(np.where(positive, 0.0, calibrated))
    tn = chunks.sums(np.where(positive, 0.0, 1 - calibrated))
    return {
        "f1": _ratio(tp, tp + 0.5 * (fp + fn)),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "accuracy": (tp + tn) / chunks.sizes,
    }


def _ratio(part: "np.ndarray", whole: "np.ndarray") -> "np.ndarray":
    """part / whole, 0 where whole is 0 (nannyml's convention for these metrics)."""
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(whole != 0, part / whole, 0.0)


def _ranked(
    calibrated: "np.ndarray", scores: "np.ndarray", chunks: Chunks
) -> dict[str, "np.ndarray"]:
    """ROC AUC and average precision per chunk: each chunk's rows by descending score,
    the cumulative expected positives and negatives rounded as nannyml rounds them."""
    import numpy as np

    auc, ap = np.empty(len(chunks.sizes)), np.empty(len(chunks.sizes))
    for index, (begin, end) in enumerate(zip(chunks.offsets[:-1], chunks.offsets[1:], strict=True)):
        # by descending score; chunk by chunk, small sorts beat one sort of every row
        by_score = np.argsort(-scores[begin:end], kind="stable")
        auc[index], ap[index] = _ranking_metrics(calibrated[begin:end][by_score])
    return {"roc_auc": auc, "average_precision": ap}


def _ranking_metrics(by_score: "np.ndarray") -> tuple[float, float]:
    """ROC AUC and average precision of one chunk, its calibrated probabilities given
    by descending score (ties need no order: tied scores have equal probabilities)."""
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        positives = np.cumsum(by_score)  # a per-chunk cumsum, as nannyml sums
        negatives = 1 + np.arange(len(by_score)) - positives
        positives, negatives = np.round(positives, DECIMALS), np.round(negatives, DECIMALS)
        tpr = np.r_[0, positives] / positives[-1]
        fpr = np.r_[0, negatives] / negatives[-1]
        precision = np.r_[1, positives / np.arange(1, len(by_score) + 1)][::-1]
        recall = tpr[::-1]
        average_precision = -np.sum(np.diff(recall) * precision[:-1])
    return _area(fpr, tpr), float(average_precision)


def _area(x: "np.ndarray", y: "np.ndarray") -> float:
    """sklearn's metrics.auc: the trapezoidal area, NaN where sklearn raises (x neither
    increasing nor decreasing: nannyml turns the error into NaN)."""
    import numpy as np

    steps = np.diff(x)
    direction = 1.0
    if np.any(steps < 0):
        if not np.all(steps <= 0):
            return float("nan")
        direction = -1.0
    with np.errstate(invalid="ignore"):
        return float(direction * np.trapezoid(y, x))


def _chunk_ends(timestamps: "pd.Series", chunks: Chunks, chunking: Chunking) -> list[datetime]:
    """Each chunk's end: its period's, or a second after its last row (as the store and
    nannyml's chunker say)."""
    import numpy as np

    starts = chunks.starts_ns
    if isinstance(chunking, ChunkPeriod):
        ends = starts + chunking.length_ns
    else:
        moments = timestamps.to_numpy(dtype="datetime64[ns]").astype("int64")[chunks.order]
        last = np.maximum.reduceat(moments, chunks.offsets[:-1])
        ends = last // SECOND_NS * SECOND_NS + SECOND_NS
    return [datetime.fromtimestamp(int(ns) // SECOND_NS, UTC) for ns in ends]


def realize(
    fitted: Fitted,
    labeled: "pd.DataFrame",
    *,
    columns: "Columns",
    metrics: list[str],
) -> list["Realized"]:
    """Realized metrics per chunk of `labeled` (rows with their target and chunk column),
    as nannyml's PerformanceCalculator gives them with the same fitted constants."""
    import numpy as np

    from perfwatch.ml.cbpe import finite
    from perfwatch.ml.realized import Realized

    targets = labeled[columns.target].to_numpy(dtype="float64")
    scores = labeled[columns.score].to_numpy(dtype="float64")
    predictions = labeled[columns.prediction].to_numpy(dtype="float64")
    if np.isnan(scores).any() or not np.isin(np.r_[targets, predictions], (0.0, 1.0)).all():
        raise EstimationError("labeled rows need scores, 0/1 predictions and 0/1 targets")
    chunks = Chunks.of(labeled[CHUNK_COLUMN].to_numpy(dtype="int64"))
    order = chunks.order
    figures = realized_chunks(fitted, scores[order], predictions[order], targets[order], chunks)
    _require(figures, metrics)
    results = []
    for index, start_ns in enumerate(chunks.starts_ns):
        start = datetime.fromtimestamp(int(start_ns) // SECOND_NS, UTC)
        for name in metrics:
            value, error = figures[name]
            results.append(Realized(start, name, float(value[index]), finite(error[index])))
    return results


def realized_chunks(
    fitted: Fitted,
    scores: "np.ndarray",
    predictions: "np.ndarray",
    targets: "np.ndarray",
    chunks: Chunks,
) -> dict[str, tuple["np.ndarray", "np.ndarray"]]:
    """metric -> (realized value, sampling error) per chunk, rows in chunk order; NaN
    where nannyml gives NaN (a chunk with one class of targets or of predictions)."""
    import numpy as np

    n = chunks.sizes.astype("float64")
    positives = chunks.sums(targets)
    predicted = chunks.sums(predictions)
    tp = chunks.sums(targets * predictions)
    fp, fn = predicted - tp, positives - tp
    tn = n - tp - fp - fn
    both_targets = (positives > 0) & (positives < n)
    both_kinds = both_targets & (predicted > 0) & (predicted < n)
    # sklearn's confusion matrix of a chunk whose targets and predictions are all one and
    # the same class has one cell: nannyml's specificity fails there (NaN, its error too)
    one_class = ((positives == 0) & (predicted == 0)) | ((positives == n) & (predicted == n))
    nan = np.full(len(n), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        ranked = _rank_auc(scores, targets, chunks), _precision_area(scores, targets, chunks)
        values = {
            "roc_auc": np.where(both_targets, ranked[0], nan),
            "average_precision": np.where(positives > 0, ranked[1], nan),
            "f1": np.where(both_kinds, 2 * tp / (2 * tp + fp + fn), nan),
            "precision": np.where(both_kinds, tp / (tp + fp), nan),
            "recall": np.where(both_kinds, tp / (tp + fn), nan),
            "specificity": np.where(one_class | (tn + fp == 0), nan, tn / (tn + fp)),
            "accuracy": (tp + tn) / n,
        }
        figures = {}
        for metric in fitted.realized:
            error = _sampling_error(metric, n)
            if metric.name == "specificity":
                error = np.where(one_class, np.nan, error)
            figures[metric.name] = (values[metric.name], error)
    return figures


def _tie_groups(scores: "np.ndarray", chunks: Chunks) -> tuple["np.ndarray", "np.ndarray"]:
    """The rows ordered by chunk, then by ascending score, and where each group of equal
    scores of a chunk begins in that order."""
    import numpy as np

    order = np.lexsort((scores, chunks.owners))
    ordered, owners = scores[order], chunks.owners[order]
    begins = np.r_[True, (ordered[1:] != ordered[:-1]) | (owners[1:] != owners[:-1])]
    return order, np.flatnonzero(begins)


def _rank_auc(scores: "np.ndarray", targets: "np.ndarray", chunks: Chunks) -> "np.ndarray":
    """ROC AUC per chunk as the Mann-Whitney statistic (tied scores share their mean rank),
    which is what sklearn's roc_auc_score computes."""
    import numpy as np

    order, begins = _tie_groups(scores, chunks)
    ends = np.r_[begins[1:], len(order)]
    within = chunks.firsts
    mean_rank = np.repeat((begins + ends - 1) / 2.0, ends - begins) - within + 1
    ordered_targets = targets[order]
    positive_ranks = chunks.sums(mean_rank * ordered_targets)
    positives = chunks.sums(ordered_targets)
    negatives = chunks.sizes - positives
    return (positive_ranks - positives * (positives + 1) / 2) / (positives * negatives)


def _precision_area(scores: "np.ndarray", targets: "np.ndarray", chunks: Chunks) -> "np.ndarray":
    """Average precision per chunk as sklearn computes it: over the distinct scores from
    the highest, the precision at each, weighted by the recall it adds."""
    import numpy as np

    order, begins = _tie_groups(-scores, chunks)  # descending scores
    ordered_targets = targets[order]
    within = chunks.firsts
    caught = np.cumsum(ordered_targets)
    before_chunk = np.r_[0.0, caught][chunks.offsets[:-1]]
    caught = caught - np.repeat(before_chunk, chunks.sizes)  # true positives so far, per chunk
    ends = np.r_[begins[1:], len(order)] - 1  # the last row of each group of equal scores
    positives = np.repeat(chunks.sums(ordered_targets), chunks.sizes)
    precision = caught[ends] / (ends - within[ends] + 1)
    recall = caught[ends] / positives[ends]
    first_of_chunk = np.isin(begins, chunks.offsets[:-1])
    gained = np.where(first_of_chunk, recall, np.diff(np.r_[0.0, recall]))
    group_chunk = np.searchsorted(chunks.offsets, begins, side="right") - 1
    return np.bincount(group_chunk, weights=gained * precision, minlength=len(chunks.sizes))


def check_equal(
    ours: Sequence[Any],
    theirs: Sequence[Any],
    fields: tuple[str, ...],
    unchecked: frozenset[tuple[str, str]] = frozenset(),
    named: str = "metric",
) -> None:
    """`--verify`: perfwatch's figures (Estimate, Realized or FeatureDrift, per chunk and
    `named` figure: metric or feature) against nannyml's; the first that differs by more
    than TOLERANCE (or is NaN on one side only) is an error naming it. `unchecked`:
    (name, field) pairs nannyml draws at random when it fits."""
    oracle = {(t.chunk_start, getattr(t, named)): t for t in theirs}
    if sorted(oracle) != sorted((o.chunk_start, getattr(o, named)) for o in ours):
        raise EstimationError("--verify: perfwatch and nannyml give figures for other chunks")
    for mine in ours:
        name = getattr(mine, named)
        for field in fields:
            if (name, field) in unchecked:
                continue
            a = _number(getattr(mine, field))
            b = _number(getattr(oracle[(mine.chunk_start, name)], field))
            if (math.isnan(a) and math.isnan(b)) or abs(a - b) <= TOLERANCE:
                continue
            raise EstimationError(
                f"--verify: {name} {field} of chunk {mine.chunk_start:%Y-%m-%d %H:%M}:"
                f" perfwatch {a!r}, nannyml {b!r}",
                hint="please report this with the model's reference set: perfwatch's"
                " arithmetic must equal nannyml's to 1e-9",
            )


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)

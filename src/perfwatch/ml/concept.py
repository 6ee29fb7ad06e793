"""The impact of a concept change, separated from covariate shift (reverse concept drift).

A concept model learns P(y|x) from a drifted chunk's labeled rows. Applied to the
reference inputs, it says how often each reference run would fail under the new
concept; the champion's expected performance on those inputs, against its reference
performance, is the change due to the concept alone (the inputs are held fixed).
"""

from typing import TYPE_CHECKING, Any

from perfwatch.ml.training import LGBM_PARAMS

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# the shipped pipeline's settings, with fewer and smaller trees and no bagging (LightGBM's
# defaults): one chunk holds a few thousand rows and a few hundred failures
CONCEPT_PARAMS: dict[str, Any] = LGBM_PARAMS | {
    "n_estimators": 100,
    "num_leaves": 15,
    "min_child_samples": 40,
    "subsample": 1.0,
    "subsample_freq": 0,
    "colsample_bytree": 1.0,
}


def expected_metrics(
    scores: "np.ndarray", predictions: "np.ndarray", positive: "np.ndarray", metrics: list[str]
) -> dict[str, float]:
    """The metrics a model with these scores and 0/1 predictions is expected to reach when
    each row is positive with probability `positive` (with 0/1 it is the realized value)."""
    import numpy as np

    p = np.asarray(positive, dtype=float)
    predicted = np.asarray(predictions, dtype=float)
    tp, fp = float(p @ predicted), float((1 - p) @ predicted)
    fn, tn = float(p @ (1 - predicted)), float((1 - p) @ (1 - predicted))
    positives, negatives = _by_score(np.asarray(scores, dtype=float), p)
    formulas = {
        "roc_auc": lambda: _roc_auc(positives, negatives),
        "average_precision": lambda: _average_precision(positives, negatives),
        "recall": lambda: tp / (tp + fn),
        "precision": lambda: tp / (tp + fp),
        "specificity": lambda: tn / (tn + fp),
        "accuracy": lambda: (tp + tn) / len(p),
        "f1": lambda: 2 * tp / (2 * tp + fp + fn),
    }
    with np.errstate(divide="ignore", invalid="ignore"):
        return {metric: float(formulas[metric]()) for metric in metrics}


def _by_score(scores: "np.ndarray", p: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
    """Expected positives and negatives per distinct score, highest score first (tied
    rows move together, as in scikit-learn's curves)."""
    import numpy as np

    distinct, inverse = np.unique(-scores, return_inverse=True)
    positives = np.bincount(inverse, weights=p, minlength=len(distinct))
    negatives = np.bincount(inverse, weights=1 - p, minlength=len(distinct))
    return positives, negatives


def _roc_auc(positives: "np.ndarray", negatives: "np.ndarray") -> float:
    import numpy as np

    tpr = np.concatenate([[0.0], np.cumsum(positives)]) / positives.sum()
    fpr = np.concatenate([[0.0], np.cumsum(negatives)]) / negatives.sum()
    return float(np.trapezoid(tpr, fpr))


def _average_precision(positives: "np.ndarray", negatives: "np.ndarray") -> float:
    """Precision at each score step, weighted by the recall the step adds."""
    import numpy as np

    true_positives = np.cumsum(positives)
    precision = true_positives / (true_positives + np.cumsum(negatives))
    return float(precision @ positives / positives.sum())


def concept_impact(
    labeled: "pd.DataFrame",
    reference: "pd.DataFrame",
    *,
    features: list[str],
    categorical: list[str],
    target: str,
    score: str,
    prediction: str,
    reference_values: dict[str, float],
) -> dict[str, float]:
    """metric -> expected value on the reference inputs under the chunk's concept, minus
    the reference value. Empty when the chunk's labels hold one class only."""
    from perfwatch.ml.training import build_pipeline

    if labeled[target].nunique() < 2:
        return {}
    concept = build_pipeline(features=features, categorical=categorical, params=CONCEPT_PARAMS)
    concept.fit(labeled[features], labeled[target].astype(int))
    positive = concept.predict_proba(reference[features])[:, 1]
    expected = expected_metrics(
        reference[score].to_numpy(),
        reference[prediction].to_numpy(),
        positive,
        list(reference_values),
    )
    return {metric: expected[metric] - value for metric, value in reference_values.items()}

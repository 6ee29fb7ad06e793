"""Whether extra training rows (synthetic or augmented: `[models.retrain]
extra_training_data`) may join a retrain: three questions, each with its rule, asked in
order; the first that fails rejects them with its reason.

1. Do they look like production? A classifier that tells them from the recent real
   production rows (cross-validated ROC AUC) should be near 0.5: rows it tells apart
   this easily teach a world the model will not meet.
2. Do their labels follow the concept? The champion and a model trained on real rows
   should rank the extra rows' labels about as well as real rows' labels (flipped or
   random labels rank far worse).
3. Do they not hurt? The challenger trained with them, judged on the real held-out
   rows, must not be worse than the one trained without them beyond what those rows can
   tell (the 95 % interval of the paired difference lies below zero).
"""

from dataclasses import dataclass

DISTINGUISHABLE = 0.75  # real-vs-extra ROC AUC from which the extra rows are rejected
LABEL_MARGIN = 0.10  # ROC AUC on the extra labels this far under that on real labels


@dataclass(frozen=True)
class LabelAgreement:
    """How one model's predictions meet the extra rows' labels, beside real rows'."""

    model: str  # champion | trained on real rows
    agreement: float  # share of extra rows whose label the model predicts
    auc_extra: float | None  # the model's scores ranking the extra rows' labels
    auc_real: float | None  # ... and the real held-out rows' labels


def looks_real(auc: float) -> str | None:
    """None, or why the extra rows are rejected by their distribution."""
    if auc >= DISTINGUISHABLE:
        return (
            f"a classifier tells them from the recent production rows with ROC AUC {auc:.2f}"
            f" (rejected from {DISTINGUISHABLE:.2f}): they do not look like production"
        )
    return None


def labels_follow(agreements: list[LabelAgreement]) -> str | None:
    """None, or why the extra rows are rejected by their labels."""
    for found in agreements:
        if found.auc_extra is None or found.auc_real is None:
            continue
        if found.auc_extra < found.auc_real - LABEL_MARGIN:
            return (
                f"their labels disagree with the concept: the {found.model} ranks them with"
                f" ROC AUC {found.auc_extra:.2f}, real rows' with {found.auc_real:.2f}"
            )
    return None


def hurts(metric: str, difference: float, low: float, high: float) -> str | None:
    """None, or why the extra rows are rejected: the challenger is worse with them (by
    `difference`, with-extra minus without, its 95 % interval [low, high])."""
    if high < 0:
        return (
            f"they hurt: with them the challenger's {metric} on the real held-out rows is"
            f" {-difference:.4f} lower (95 % interval {low:+.4f} to {high:+.4f})"
        )
    return None

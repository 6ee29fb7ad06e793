"""The rules that admit extra training rows (domain.synthetic)."""

from perfwatch.domain.synthetic import (
    DISTINGUISHABLE,
    LABEL_MARGIN,
    LabelAgreement,
    hurts,
    labels_follow,
    looks_real,
)


def test_rows_a_classifier_tells_from_production_are_rejected() -> None:
    assert looks_real(0.55) is None
    assert looks_real(DISTINGUISHABLE - 0.01) is None
    reason = looks_real(0.93)
    assert reason is not None and "ROC AUC 0.93" in reason


def test_labels_ranked_far_worse_than_real_ones_are_rejected() -> None:
    fine = LabelAgreement("champion", 0.92, auc_extra=0.80, auc_real=0.84)
    assert labels_follow([fine]) is None
    flipped = LabelAgreement("model trained on real rows", 0.08, auc_extra=0.10, auc_real=0.86)
    reason = labels_follow([fine, flipped])
    assert (
        reason is not None and "model trained on real rows ranks them with ROC AUC 0.10" in reason
    )
    edge = LabelAgreement("champion", 0.9, auc_extra=0.84 - LABEL_MARGIN + 0.001, auc_real=0.84)
    assert labels_follow([edge]) is None
    assert labels_follow([LabelAgreement("champion", 1.0, None, 0.84)]) is None, "one class"


def test_rows_that_make_the_challenger_worse_beyond_the_noise_are_rejected() -> None:
    assert hurts("roc_auc", -0.003, -0.011, 0.004) is None, "within the noise"
    assert hurts("roc_auc", 0.01, 0.002, 0.02) is None
    reason = hurts("roc_auc", -0.02, -0.03, -0.01)
    assert reason is not None and "0.0200 lower" in reason

"""Expected metrics under a probabilistic concept: with certain labels they are the
realized metrics, which scikit-learn computes independently."""

import numpy as np
import pytest
from sklearn import metrics as sk

from perfwatch.ml.concept import expected_metrics

SKLEARN = {
    "roc_auc": lambda y, s, p: sk.roc_auc_score(y, s),
    "average_precision": lambda y, s, p: sk.average_precision_score(y, s),
    "recall": lambda y, s, p: sk.recall_score(y, p),
    "precision": lambda y, s, p: sk.precision_score(y, p),
    "specificity": lambda y, s, p: sk.recall_score(1 - y, 1 - p),
    "accuracy": lambda y, s, p: sk.accuracy_score(y, p),
    "f1": lambda y, s, p: sk.f1_score(y, p),
}


@pytest.mark.parametrize("ties", [False, True])
def test_certain_labels_give_the_realized_metrics(ties: bool) -> None:
    rng = np.random.default_rng(7)
    labels = (rng.random(3_000) < 0.1).astype(int)
    scores = np.clip(labels * 0.3 + rng.random(3_000) * 0.7, 0, 1)
    if ties:
        scores = scores.round(1)
    predictions = (scores >= 0.5).astype(int)
    expected = expected_metrics(scores, predictions, labels.astype(float), list(SKLEARN))
    for metric, reference in SKLEARN.items():
        assert expected[metric] == pytest.approx(reference(labels, scores, predictions)), metric


def test_uncertain_labels_average_over_the_concept() -> None:
    rng = np.random.default_rng(8)
    probability = rng.random(20_000) * 0.4
    scores = probability + rng.normal(0, 0.05, 20_000)
    predictions = (scores >= 0.2).astype(int)
    expected = expected_metrics(scores, predictions, probability, ["roc_auc", "recall"])
    draws = [(rng.random(20_000) < probability).astype(int) for _ in range(20)]
    sampled_auc = np.mean([sk.roc_auc_score(y, scores) for y in draws])
    sampled_recall = np.mean([sk.recall_score(y, predictions) for y in draws])
    assert expected["roc_auc"] == pytest.approx(sampled_auc, abs=0.005)
    assert expected["recall"] == pytest.approx(sampled_recall, abs=0.005)

"""The paired bootstrap of a metric's difference between two models (ml.paired)."""

import numpy as np
import pytest

from perfwatch.ml.paired import paired_difference


def scored(noise: float, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = np.clip(labels * 0.6 + 0.2 + rng.normal(0, noise, len(labels)), 0, 1)
    return scores, (scores >= 0.5).astype(float)


def test_a_model_against_itself_differs_by_nothing() -> None:
    labels = (np.random.default_rng(0).random(2000) < 0.3).astype(float)
    model = scored(0.3, labels, 1)
    assert paired_difference("roc_auc", labels, model, model) == (0.0, 0.0, 0.0)


def test_a_clearly_worse_model_lies_below_zero_and_a_like_one_straddles_it() -> None:
    labels = (np.random.default_rng(0).random(2000) < 0.3).astype(float)
    good, worse, like = scored(0.2, labels, 1), scored(0.5, labels, 2), scored(0.2, labels, 3)
    difference, low, high = paired_difference("roc_auc", labels, good, worse)
    assert difference < 0 and low <= difference <= high < 0
    difference, low, high = paired_difference("roc_auc", labels, good, like)
    assert low < 0 < high and difference == pytest.approx(0, abs=0.02)

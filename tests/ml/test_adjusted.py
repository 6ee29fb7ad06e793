"""The delay-adjusted estimate: what it makes of early, one-sided labels."""

import numpy as np
import pytest

from perfwatch.ml.adjusted import Arrival, adjusted_metrics, fit_correction
from perfwatch.ml.chunk_metrics import (
    Chunks,
    Fitted,
    FittedMetric,
    estimate_chunks,
    realized_chunks,
)

DAY = 86_400.0
METRICS = tuple(FittedMetric(m, 0.05, 0.5, 0.0, 1.0) for m in ("roc_auc", "f1", "recall"))
FITTED = Fitted(None, None, METRICS, METRICS)  # the scores are calibrated already
# failures are reported within a day, "no failure" after seven
PDM = Arrival.of(
    np.r_[np.linspace(0, DAY, 50), np.full(950, 7 * DAY)], np.r_[np.ones(50), np.zeros(950)]
)


def fleet(rows: int, seed: int, extra_risk: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated scores, and outcomes drawn from them (plus `extra_risk` of failing
    that the model does not know: a new concept)."""
    rng = np.random.default_rng(seed)
    scores = rng.beta(0.4, 8, rows)
    outcomes = (rng.random(rows) < np.minimum(scores + extra_risk * (scores < 0.1), 1)).astype(
        float
    )
    return scores, outcomes


def adjusted(
    scores: np.ndarray, targets: np.ndarray, ages: np.ndarray, arrival: Arrival = PDM
) -> dict[str, float]:
    figures = adjusted_metrics(
        FITTED,
        arrival,
        scores=scores,
        predictions=(scores >= 0.5).astype(float),
        targets=targets,
        ages=ages,
        chunks=Chunks.of(np.zeros(len(scores), dtype=np.int64)),
    )
    return {metric: float(values[0][0]) for metric, values in figures.items()}


def one_chunk(scores: np.ndarray) -> Chunks:
    return Chunks.of(np.zeros(len(scores), dtype=np.int64))


def test_a_chunk_whose_labels_have_all_arrived_gets_its_realized_metrics() -> None:
    scores, outcomes = fleet(3000, seed=1)
    found = adjusted(scores, outcomes, np.full(3000, 8 * DAY))
    chunks = one_chunk(scores)
    realized = realized_chunks(FITTED, scores, (scores >= 0.5).astype(float), outcomes, chunks)
    for metric, value in found.items():
        assert value == pytest.approx(realized[metric][0][0], abs=1e-4), metric


def test_with_no_label_and_none_due_yet_it_is_cbpe() -> None:
    scores, _ = fleet(3000, seed=2)
    later = Arrival.of(
        np.r_[np.full(5, 3600.0), np.full(5, 7 * DAY)], np.r_[np.ones(5), np.zeros(5)]
    )
    found = adjusted(scores, np.full(3000, np.nan), np.zeros(3000), later)
    cbpe = estimate_chunks(FITTED, scores, (scores >= 0.5).astype(float), one_chunk(scores))
    for metric, value in found.items():
        assert value == pytest.approx(cbpe[metric][0][0], abs=1e-6), metric


def test_a_day_of_early_failures_sees_a_new_concept_that_cbpe_cannot() -> None:
    scores, outcomes = fleet(5000, seed=3, extra_risk=0.05)
    ages = np.full(5000, 1.5 * DAY)  # every failure is in, no "no failure" yet
    early = np.where(outcomes == 1, 1.0, np.nan)
    found = adjusted(scores, early, ages)
    chunks = one_chunk(scores)
    truth = realized_chunks(FITTED, scores, (scores >= 0.5).astype(float), outcomes, chunks)
    cbpe = estimate_chunks(FITTED, scores, (scores >= 0.5).astype(float), chunks)
    assert abs(found["roc_auc"] - truth["roc_auc"][0][0]) < 0.01
    assert cbpe["roc_auc"][0][0] - truth["roc_auc"][0][0] > 0.1, "CBPE is blind to it"


def test_labels_that_arrive_slowly_are_weighed_by_their_age() -> None:
    """Failures reported over three days, the chunk a day old: a third of them are in, and
    the rows without a label are not simply negatives."""
    slow = Arrival.of(
        np.r_[np.linspace(0, 3 * DAY, 50), np.full(950, 7 * DAY)],
        np.r_[np.ones(50), np.zeros(950)],
    )
    scores, outcomes = fleet(20_000, seed=4, extra_risk=0.05)
    rng = np.random.default_rng(5)
    ages = np.full(len(scores), DAY)
    arrived = (outcomes == 1) & (rng.uniform(0, 3 * DAY, len(scores)) <= ages)
    found = adjusted(scores, np.where(arrived, 1.0, np.nan), ages, slow)
    chunks = one_chunk(scores)
    truth = realized_chunks(FITTED, scores, (scores >= 0.5).astype(float), outcomes, chunks)
    cbpe = estimate_chunks(FITTED, scores, (scores >= 0.5).astype(float), chunks)
    assert abs(found["roc_auc"] - truth["roc_auc"][0][0]) < 0.02
    assert cbpe["roc_auc"][0][0] - truth["roc_auc"][0][0] > 0.1


def test_the_correction_stays_at_the_identity_without_labels() -> None:
    scores, _ = fleet(1000, seed=6)
    alpha, beta = fit_correction(scores, np.full(1000, np.nan), np.ones(1000), np.ones(1000))
    assert alpha == pytest.approx(0.0, abs=1e-6) and beta == pytest.approx(1.0, abs=1e-6)


def test_more_early_failures_than_the_scores_expect_raise_the_correction() -> None:
    scores, outcomes = fleet(5000, seed=8, extra_risk=0.05)
    to_come = PDM.still_to_come(np.full(5000, 0.5 * DAY))
    early = np.where((outcomes == 1) & (np.arange(5000) % 2 == 0), 1.0, np.nan)  # half in
    alpha, beta = fit_correction(scores, early, *to_come)
    assert alpha + beta * np.log(0.02 / 0.98) > np.log(0.02 / 0.98) + 0.3, "low scores rise"


def test_a_chunk_where_every_label_is_a_failure_is_still_estimated() -> None:
    scores, outcomes = fleet(2000, seed=7)
    only_failures = np.where(outcomes == 1, 1.0, np.nan)
    found = adjusted(scores, only_failures, np.full(2000, 0.5 * DAY))
    assert all(np.isfinite(v) and 0 <= v <= 1 for v in found.values())


def test_tied_scores_with_known_labels_count_as_realized_roc_auc_counts_them() -> None:
    scores = np.repeat([0.9, 0.5, 0.1], 4)
    outcomes = np.array([1, 1, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0], dtype=float)
    found = adjusted(scores, outcomes, np.full(12, 8 * DAY))
    chunks = one_chunk(scores)
    realized = realized_chunks(FITTED, scores, (scores >= 0.5).astype(float), outcomes, chunks)
    assert found["roc_auc"] == pytest.approx(realized["roc_auc"][0][0], abs=1e-9)

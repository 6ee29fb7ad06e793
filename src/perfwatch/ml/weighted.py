"""The importance-weighted estimate (`estimator = "weighted"`, off by default: measured
worse than CBPE by benchmarks/alert_quality, see the README).

CBPE calibrates the model's scores on the reference as a whole. Where a chunk's rows sit
in a part of the input space the reference holds few of, a calibration learnt mostly
elsewhere may not hold there. Weighting each reference row by how much more likely it
is under the chunk than under the reference (a density ratio, from a reference-vs-chunk
classifier: p / (1 - p) times the sample sizes' ratio, clipped) and fitting the isotonic
calibration on the weighted reference gives a calibration for the chunk's own mix; the
metrics are then CBPE's arithmetic on it (the PAPE idea, arXiv 2401.08348).
"""

from dataclasses import replace
from typing import TYPE_CHECKING

from perfwatch.domain.chunks import CHUNK_COLUMN, SECOND_NS, Chunking
from perfwatch.ingest.contract import Contract
from perfwatch.ml import chunk_metrics

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from perfwatch.ml.cbpe import Columns, Estimate

SAMPLE_ROWS = 5_000  # per side
WEIGHT_CLIP = (0.05, 20.0)  # a few reference rows must not carry the whole calibration


def density_weights(
    contract: Contract, reference: "pd.DataFrame", chunk: "pd.DataFrame", *, seed: int
) -> "np.ndarray":
    """Each reference row's weight: how much likelier its inputs are in the chunk than in
    the reference (cross-validated classifier, clipped, mean 1)."""
    import numpy as np

    from perfwatch.ml.trust import encoded, told_apart

    rng = np.random.default_rng(abs(seed))
    theirs = chunk.iloc[rng.choice(len(chunk), min(SAMPLE_ROWS, len(chunk)), replace=False)]
    told = np.r_[np.zeros(len(reference)), np.ones(len(theirs))]
    likely, _ = told_apart(contract, encoded(contract, reference, theirs), told, rng, seed)
    p = np.clip(likely[: len(reference)], 1e-6, 1 - 1e-6)
    weights = np.clip(p / (1 - p) * len(reference) / len(theirs), *WEIGHT_CLIP)
    return weights / weights.mean()


def weighted_calibration(
    scores: "np.ndarray", targets: "np.ndarray", weights: "np.ndarray"
) -> tuple["np.ndarray", "np.ndarray"]:
    """The isotonic calibration of the reference's scores, its rows weighted: breakpoints
    (x, y) to interpolate between, as chunk_metrics.Fitted keeps CBPE's."""
    from sklearn.isotonic import IsotonicRegression

    fitted = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1, increasing=True)
    fitted.fit(scores, targets, sample_weight=weights)
    return fitted.X_thresholds_, fitted.y_thresholds_


def estimate(
    fitted: chunk_metrics.Fitted,
    contract: Contract,
    reference: "pd.DataFrame",
    rows: "pd.DataFrame",
    *,
    columns: "Columns",
    metrics: list[str],
    chunking: Chunking,
) -> list["Estimate"]:
    """chunk_metrics.estimate with each chunk's own calibration: the reference (scored,
    with its targets) weighted towards the chunk's inputs. The sampling error stays
    CBPE's: the weights do not change how many rows a chunk holds."""
    features = [rule.name for rule in contract.columns]
    sample = reference.sample(min(SAMPLE_ROWS, len(reference)), random_state=0)
    scores = sample[columns.score].to_numpy(dtype="float64")
    targets = sample[columns.target].to_numpy(dtype="float64")
    found: list[Estimate] = []
    for ns, chunk in rows.groupby(CHUNK_COLUMN, sort=True):
        seed = int(ns) // SECOND_NS  # the chunk's start: its figure is reproducible
        weights = density_weights(contract, sample[features], chunk[features], seed=seed)
        x, y = weighted_calibration(scores, targets, weights)
        own = replace(fitted, calibration_x=tuple(x), calibration_y=tuple(y))
        found += chunk_metrics.estimate(
            own, chunk, columns=columns, metrics=metrics, chunking=chunking
        )
    return found

"""The importance-weighted estimate (issue 15, part 4), measured by benchmarks/alert_quality.

CBPE calibrates the model's scores on the reference as a whole. Where a chunk's rows sit
in a part of the input space the reference holds few of, a calibration learnt mostly
elsewhere may not hold there. Weighting each reference row by how much more likely it
is under the chunk than under the reference (a density ratio, from a reference-vs-chunk
classifier: p / (1 - p) times the sample sizes' ratio, clipped) and fitting the isotonic
calibration on the weighted reference gives a calibration for the chunk's own mix; the
metrics are then CBPE's arithmetic on it (the PAPE idea, arXiv 2401.08348).
"""

from typing import TYPE_CHECKING

from perfwatch.ingest.contract import Contract

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

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

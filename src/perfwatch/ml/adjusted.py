"""The delay-adjusted estimate: CBPE's arithmetic on probabilities that know the early labels.

In predictive maintenance a failure is reported at once and "no failure" only once the
horizon has passed, so a chunk's first labels are nearly all failures: realized metrics
on them are badly biased, but they say a great deal. Given how labels of each class
arrive (`Arrival`, the label delays seen in mature chunks), a row whose label has not
arrived at age `a` is positive with probability

    q S1(a) / (q S1(a) + (1 - q) S0(a))

where S1, S0 are the shares of positive and negative labels still to come at that age
and q is the row's probability of failing. q is CBPE's calibrated probability, corrected
per chunk as q = sigmoid(alpha + beta logit p): alpha and beta are fitted by maximum
likelihood on the chunk's known positives, known negatives and not-yet-known rows given
their age, with Gaussian priors at the identity so that a chunk with few labels stays
with CBPE. The slope's prior is the tighter (sd 0.3): with no failure in yet, the rows
still waiting pull it up (fewer failures than expected), and a free slope sharpens every
probability on that alone (CBPE's ROC AUC of 0.85 read 0.93 with sd 1 on such a chunk,
0.87 with sd 0.3). Rows whose label has arrived count as they are (0 or 1); the metrics
are then CBPE's expected metrics on those probabilities (chunk_metrics), with CBPE's band
(its sampling error for the chunk's size). A chunk whose labels have all arrived gets
its realized metrics. The idea is the chain ladder's of insurance reserving (the lfmm
benchmark's DelayAdjustedCBPE does the same).
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from perfwatch.ml.chunk_metrics import Chunks, Fitted, expected_metrics

if TYPE_CHECKING:
    import numpy as np

PRIOR_SD = (1.0, 0.3)  # of alpha around 0 and of beta around 1
EDGE = 1e-6  # probabilities are kept this far from 0 and 1


@dataclass(frozen=True)
class Arrival:
    """How labels arrive: the delays (seconds from the row's time to its label's) of each
    class, sorted, as seen in mature chunks."""

    positive: "np.ndarray"
    negative: "np.ndarray"

    @classmethod
    def of(cls, delays: "np.ndarray", targets: "np.ndarray") -> "Arrival":
        import numpy as np

        return cls(np.sort(delays[targets == 1]), np.sort(delays[targets == 0]))

    def still_to_come(self, ages: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
        """Per age: the share of positive, and of negative, labels that arrive later."""
        import numpy as np

        def share(delays: "np.ndarray") -> "np.ndarray":
            return 1 - np.searchsorted(delays, ages, side="right") / len(delays)

        return share(self.positive), share(self.negative)


def adjusted_metrics(
    fitted: Fitted,
    arrival: Arrival,
    *,
    scores: "np.ndarray",
    predictions: "np.ndarray",
    targets: "np.ndarray",
    ages: "np.ndarray",
    chunks: Chunks,
) -> dict[str, tuple["np.ndarray", "np.ndarray", "np.ndarray", "np.ndarray"]]:
    """metric -> (estimate, sampling error, lower, upper) per chunk, as chunk_metrics gives
    CBPE's; rows in chunk order, `targets` NaN where the label has not arrived, `ages` the
    seconds from each row's time to now."""
    import numpy as np

    calibrated = np.clip(fitted.calibrate(scores), EDGE, 1 - EDGE)
    to_come = arrival.still_to_come(ages)
    probabilities = np.empty(len(scores))
    for begin, end in zip(chunks.offsets[:-1], chunks.offsets[1:], strict=True):
        part = slice(begin, end)
        probabilities[part] = _positive(
            calibrated[part], targets[part], to_come[0][part], to_come[1][part]
        )
    ranking = _tied_alike(probabilities, scores, chunks)
    return expected_metrics(fitted, probabilities, scores, predictions, chunks, ranking)


def _positive(
    calibrated: "np.ndarray", targets: "np.ndarray", s1: "np.ndarray", s0: "np.ndarray"
) -> "np.ndarray":
    """One chunk: each row's probability of being positive, given what has arrived."""
    import numpy as np

    known = ~np.isnan(targets)
    # a row past every delay of both classes lost its label: it tells nothing
    lost = ~known & (s1 <= 0) & (s0 <= 0)
    s1, s0 = np.where(lost, 1.0, s1), np.where(lost, 1.0, s0)
    alpha, beta = fit_correction(calibrated, targets, s1, s0)
    q = _sigmoid(alpha + beta * _logit(calibrated))
    waiting = q * s1 / np.maximum(q * s1 + (1 - q) * s0, EDGE)
    return np.where(known, np.nan_to_num(targets), waiting)


def fit_correction(
    calibrated: "np.ndarray", targets: "np.ndarray", s1: "np.ndarray", s0: "np.ndarray"
) -> tuple[float, float]:
    """alpha and beta of q = sigmoid(alpha + beta logit p), at the maximum of the
    likelihood of what has (and has not yet) arrived times the priors: damped Newton
    steps on the two parameters, each kept only if it lowers the cost (scipy's L-BFGS-B
    took 12 ms a chunk, most of the step's time)."""
    import numpy as np

    logits = _logit(calibrated)
    positive, negative, waiting = targets == 1, targets == 0, np.isnan(targets)
    gap, base = (s1 - s0)[waiting], s0[waiting]
    identity, spread = np.array([0.0, 1.0]), np.asarray(PRIOR_SD) ** 2

    def cost(theta: "np.ndarray") -> float:
        q = _sigmoid(theta[0] + theta[1] * logits)
        likely = np.maximum(base + q[waiting] * gap, EDGE)
        fit = np.log(q[positive]).sum() + np.log(1 - q[negative]).sum() + np.log(likely).sum()
        return float(-fit + 0.5 * np.sum((theta - identity) ** 2 / spread))

    def derivatives(theta: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
        q = _sigmoid(theta[0] + theta[1] * logits)
        spread_q = q * (1 - q)
        first, second = np.zeros(len(q)), spread_q.copy()  # by z = alpha + beta logit p
        first[positive], first[negative] = -(1 - q[positive]), q[negative]
        qw = q[waiting]
        ratio = gap * spread_q[waiting] / np.maximum(base + qw * gap, EDGE)
        first[waiting], second[waiting] = -ratio, -ratio * (1 - 2 * qw) + ratio**2
        by = np.vstack([np.ones(len(q)), logits])  # dz / d(alpha, beta)
        gradient = by @ first + (theta - identity) / spread
        hessian = (by * second) @ by.T + np.diag(1 / spread)
        return gradient, hessian

    theta, now = identity.copy(), cost(identity)
    for _ in range(50):
        gradient, hessian = derivatives(theta)
        damping = 0.0
        for _ in range(30):  # damp until the step lowers the cost
            step = np.linalg.solve(hessian + damping * np.eye(2), gradient)
            tried = cost(theta - step)
            if tried <= now:
                break
            damping = max(2 * damping, 1e-3 * float(np.trace(hessian)))
        else:
            break
        theta, moved, now = theta - step, float(np.abs(step).max()), tried
        if moved < 1e-8:
            break
    return float(theta[0]), float(theta[1])


def _tied_alike(probabilities: "np.ndarray", scores: "np.ndarray", chunks: Chunks) -> "np.ndarray":
    """Each row's probability averaged over the rows of its chunk with the same score: a
    ranking cannot order tied rows, so their known labels count as a diagonal step (as
    realized ROC AUC counts ties), not in whatever order the rows came."""
    import pandas as pd

    keys = pd.DataFrame({"chunk": chunks.owners, "score": scores, "p": probabilities})
    return keys.groupby(["chunk", "score"], sort=False)["p"].transform("mean").to_numpy()


def _logit(p: "np.ndarray") -> "np.ndarray":
    import numpy as np

    return np.log(p / (1 - p))


def _sigmoid(z: "np.ndarray") -> "np.ndarray":
    import numpy as np

    return np.clip(1 / (1 + np.exp(-z)), EDGE, 1 - EDGE)

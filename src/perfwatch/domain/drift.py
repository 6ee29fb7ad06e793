"""When feature drift is worth a person's attention.

nannyml's own alert (a value beyond mean + 3 std of the reference chunks) fired on 5-25 %
of chunks of unshifted features in a check here: thresholds from ~10 reference chunks
are tight, and a distance between samples is never zero. A chunk's drift is confirmed
only when nannyml alerts, the distance is large enough to matter (an effect-size floor),
and the same held for the chunk before it.
"""

from collections.abc import Sequence
from dataclasses import dataclass

CONFIRM_OVER = 2  # chunks in a row
MULTIVARIATE = "__all_features__"  # the "feature" of PCA reconstruction-error figures
# Jensen-Shannon distance below which a shift is too small to act on (0: same
# distribution, 1: disjoint); chunks of a few hundred rows of one distribution show 0.02-0.06.
JS_FLOOR = 0.1
# The same floor for a Kolmogorov-Smirnov test (its statistic: the largest gap between the
# two distribution functions): on thousands of rows its p-value is certain of gaps of a
# few hundredths, which the stable fleet shows (tool wear follows maintenance cycles
# longer than a reference): without it, 1.6 % of one seed's stable feature-chunks alerted.
KS_FLOOR = 0.1


@dataclass(frozen=True)
class DriftMethods:
    """How a model's feature drift is measured (`[models.drift]`, ml.drift_tests):
    per continuous and categorical feature, and of all features together."""

    continuous: str = "jensen_shannon"  # jensen_shannon | ks | wasserstein
    categorical: str = "jensen_shannon"  # jensen_shannon | chi2
    multivariate: str = "pca"  # pca | classifier | mmd
    level: float = 0.05  # of the p-value tests, false-discovery corrected across features
    sample: int = 500  # rows a side for the classifier and MMD
    permutations: int = 100  # of MMD's permutation test


@dataclass(frozen=True)
class RawDrift:
    method: str  # jensen_shannon | reconstruction_error
    value: float
    alert: bool  # nannyml's


FLOORS = {"jensen_shannon": JS_FLOOR, "ks": KS_FLOOR}  # a method's effect-size floor


def notable(drift: RawDrift) -> bool:
    """The method's own alert, on a shift large enough to act on."""
    return drift.alert and drift.value >= FLOORS.get(drift.method, float("-inf"))


def confirmed(chain: Sequence[RawDrift], *, over: int = CONFIRM_OVER) -> list[bool]:
    """For one feature's complete chunks in data-time order: is each chunk's drift confirmed?"""
    flags, run = [], 0
    for drift in chain:
        run = run + 1 if notable(drift) else 0
        flags.append(run >= over)
    return flags

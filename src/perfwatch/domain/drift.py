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


@dataclass(frozen=True)
class RawDrift:
    method: str  # jensen_shannon | reconstruction_error
    value: float
    alert: bool  # nannyml's


def notable(drift: RawDrift) -> bool:
    if not drift.alert:
        return False
    return drift.value >= JS_FLOOR if drift.method == "jensen_shannon" else True


def confirmed(chain: Sequence[RawDrift], *, over: int = CONFIRM_OVER) -> list[bool]:
    """For one feature's complete chunks in data-time order: is each chunk's drift confirmed?"""
    flags, run = [], 0
    for drift in chain:
        run = run + 1 if notable(drift) else 0
        flags.append(run >= over)
    return flags

"""Performance thresholds: which value of a metric is too low, and when that is an alert."""

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ThresholdRule:
    """How one metric's lower threshold is set.

    `lower`: an absolute floor. `drop`: a relative drop from the reference value
    (0.10 means "alert below 90 % of the reference value"). Neither: nannyml's
    reference band (mean - 3 std of the metric over the reference chunks).
    """

    lower: float | None = None
    drop: float | None = None

    @property
    def source(self) -> str:
        if self.lower is not None:
            return "lower"
        return "drop" if self.drop is not None else "reference_band"


@dataclass(frozen=True)
class ReferencePerformance:
    """A metric on the version's reference set: its value and nannyml's band."""

    value: float
    band_lower: float | None


def threshold_for(rule: ThresholdRule, reference: ReferencePerformance) -> float | None:
    """The value under which an estimate alerts, or None when there is no bound."""
    if rule.lower is not None:
        return rule.lower
    if rule.drop is not None:
        return reference.value * (1.0 - rule.drop)
    return reference.band_lower


def is_alert(value: float, threshold: float | None, *, provisional: bool) -> bool:
    """An estimate alerts when it is under its threshold and its chunk is complete.

    Incomplete chunks never alert: their bands come from whole reference chunks, and a
    partial chunk's estimate is too noisy to act on.
    """
    return not provisional and threshold is not None and value < threshold


ALERT_ON = ("cbpe", "adjusted", "both")
# The delay-adjusted estimate follows the early labels, and so their noise: on `stable`
# a lone chunk went under its threshold (1 of 44 in a 45-day trial). It alerts only when
# it stays under for this many complete chunks in a row (none of 267 stable chunks then,
# and a new supplier is still called on the chunk after the change: ./dev bench-alerts).
ADJUSTED_OVER = 2


def firing(alert_on: str, chain: Sequence[tuple[bool, bool | None]]) -> list[bool]:
    """For one metric's complete chunks, oldest first, each given as (CBPE's alert, the
    adjusted estimate's alert or None where there is none): does the chunk alert by the
    model's `alert_on`? CBPE's alert counts at once, the adjusted one when it held for
    ADJUSTED_OVER chunks in a row (a chunk without one counts with CBPE's)."""
    flags, run = [], 0
    for cbpe, adjusted in chain:
        run = run + 1 if (cbpe if adjusted is None else adjusted) else 0
        confirmed = run >= ADJUSTED_OVER
        flags.append(
            cbpe
            if alert_on == "cbpe"
            else confirmed
            if alert_on == "adjusted"
            else cbpe or confirmed
        )
    return flags


def in_force(own: float | None, bar: float | None) -> float | None:
    """The threshold an estimate is judged by: the version's own, never under the bar.

    A promotion re-fits the reference band on the new version's (often weaker) reference;
    without the bar, the threshold would sink with it and a degraded model would read
    as healthy against its own lowered standard.
    """
    if bar is None or own is None:
        return own if bar is None else bar
    return max(own, bar)


def under_bar(value: float | None, bar: float | None) -> bool:
    return value is not None and bar is not None and value < bar

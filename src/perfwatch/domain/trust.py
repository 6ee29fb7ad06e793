"""When a chunk's estimate can be trusted, without labels.

CBPE trusts the model's confidence. Where rows lie outside what the model was trained
and calibrated on (the reference), that confidence means little: a model can be sure and
wrong on temperatures it never saw. Two figures per complete chunk say how far the
chunk is from the reference: the share of its rows outside the reference's support, and
how well a classifier tells its rows from the reference's (ROC AUC: 0.5, alike; 1.0,
told apart every time). A chunk past either limit is unreliable.
"""

from dataclasses import dataclass

# A chunk is unreliable when this share of its rows lies outside the reference's support
# (numeric values beyond its range widened by a tenth of the span, categories it never
# had). On `stable` no chunk has a row outside; a heat wave's second day has half.
OUT_OF_DOMAIN_SHARE = 0.10
# ... or when a reference-vs-chunk classifier tells its rows from the reference's this
# well (cross-validated ROC AUC). Unshifted chunks: 0.45-0.56; the heat wave's second
# day 1.0; a tool shortage that CBPE reads well (the model saw such runs): up to 0.94.
DOMAIN_AUC = 0.97
# The classifier costs ~15 ms a chunk; it runs only on chunks where a cheap figure moved:
# this share of rows outside the support, or feature drift beyond nannyml's thresholds.
LOOK_CLOSER_SHARE = 0.01
NAMED = 3  # features named in a reason


@dataclass(frozen=True)
class Outside:
    """One feature's rows outside the reference's support, on one side of it."""

    feature: str
    side: str  # above | below | unseen
    share: float  # of the chunk's rows


@dataclass(frozen=True)
class Limits:
    out_of_domain_share: float = OUT_OF_DOMAIN_SHARE
    domain_auc: float = DOMAIN_AUC


@dataclass(frozen=True)
class Trust:
    """How far one complete chunk is from the reference."""

    out_of_domain_share: float
    outside: tuple[Outside, ...]  # the features most responsible, largest share first
    domain_auc: float | None  # None: not measured (no cheap figure moved)
    telling: tuple[str, ...] = ()  # the features the classifier told the rows apart by

    def reliable(self, limits: Limits) -> bool:
        auc_ok = self.domain_auc is None or self.domain_auc < limits.domain_auc
        return self.out_of_domain_share < limits.out_of_domain_share and auc_ok

    def reason(self, limits: Limits) -> str | None:
        """Why the chunk's estimate cannot be trusted, in a person's words (None: it can)."""
        if self.reliable(limits):
            return None
        parts = []
        if self.out_of_domain_share >= limits.out_of_domain_share:
            named = ", ".join(_words(o) for o in self.outside[:NAMED])
            parts.append(
                f"{self.out_of_domain_share:.0%} of rows lie outside the reference ({named})"
            )
        if self.domain_auc is not None and self.domain_auc >= limits.domain_auc:
            by = f", by {', '.join(repr(f) for f in self.telling)}" if self.telling else ""
            parts.append(
                f"a classifier tells its rows from the reference's with ROC AUC"
                f" {self.domain_auc:.2f}{by}"
            )
        return "; ".join(parts)


def _words(outside: Outside) -> str:
    if outside.side == "unseen":
        return f"{outside.share:.0%} have {outside.feature!r} values the reference never had"
    return f"{outside.share:.0%} have {outside.feature!r} {outside.side} the reference's range"


def look_closer(out_of_domain_share: float, drifted: bool) -> bool:
    """Whether the classifier should measure a chunk (it is the costly figure)."""
    return drifted or out_of_domain_share >= LOOK_CLOSER_SHARE

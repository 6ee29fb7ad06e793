"""The retrain policy: when to retrain a model, or why not yet.

Pure logic on data time: the caller gathers the situation from the store and passes it
in; nothing here reads a clock or a database. Every outcome carries a reason a person
can read in `status` ("degraded, waiting for 600 more labeled rows").
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetrainPolicy:
    enabled: bool
    consecutive: int  # complete chunks under threshold before triggering
    cooldown: timedelta  # data time between retrains
    min_labeled_rows: int  # recent labeled production rows needed


@dataclass(frozen=True)
class MetricChain:
    """One metric's estimate alerts on the newest complete chunks, oldest first."""

    metric: str
    alerts: Sequence[bool]


@dataclass(frozen=True)
class Situation:
    now: datetime  # data time: the newest row ingested
    estimates: Sequence[MetricChain]
    concept_drift: Sequence[str]  # metrics with a confirmed verdict on the newest judged chunk
    labeled_rows: int  # labeled production rows within the retrain window
    degraded_labeled_rows: int  # of them, in chunks whose estimate was under its threshold
    drifted_labeled_rows: int  # of them, in chunks whose realized was out of the band
    last_retrain: datetime | None  # data time of the last retrain started
    running: bool  # a retrain of this model is in progress
    # per metric, whether the newest judged chunks' realized values were under the bar
    realized_under_bar: Sequence[MetricChain] = ()


@dataclass(frozen=True)
class Decision:
    state: str  # healthy | disabled | running | cooling_down | waiting_for_labels | due
    trigger: str | None  # estimate | concept_drift
    reason: str

    @property
    def retrain(self) -> bool:
        return self.state == "due"


def trigger_of(situation: Situation, consecutive: int) -> tuple[str | None, str]:
    """What calls for a retrain, with its figures: a confirmed concept drift first (the
    estimate cannot see it), then a metric estimated under its threshold long enough,
    then a realized metric under the bar long enough."""
    if situation.concept_drift:
        return "concept_drift", f"concept drift confirmed on {', '.join(situation.concept_drift)}"
    chunks = "chunks" if consecutive > 1 else "chunk"
    if degraded := _firing(situation.estimates, consecutive):
        why = f"estimated {degraded[0]} under its threshold for {consecutive} complete {chunks}"
        return "estimate", why
    # a promoted version may estimate itself fine against its own reference and still
    # fall short of what version 1 delivered: while under the bar, keep trying
    if short := _firing(situation.realized_under_bar, consecutive):
        return "under_bar", f"realized {short[0]} under the bar for {consecutive} judged {chunks}"
    return None, "no metric under its threshold or the bar, no concept drift"


def _firing(chains: Sequence[MetricChain], consecutive: int) -> list[str]:
    """The metrics whose newest `consecutive` observations all fired."""
    return [
        c.metric
        for c in chains
        if len(c.alerts) >= consecutive and all(list(c.alerts)[-consecutive:])
    ]


def decide(policy: RetrainPolicy, situation: Situation, *, force: bool = False) -> Decision:
    """Retrain now, or why not. `force` stands in for the trigger (`retrain --force`)."""
    trigger, why = trigger_of(situation, policy.consecutive)
    if force:
        trigger, why = trigger or "manual", f"asked by hand ({why})"
    if trigger is None:
        return Decision("healthy", None, why)
    if not policy.enabled and not force:
        return Decision("disabled", trigger, f"{why}; retraining is disabled in the config")
    if situation.running:
        return Decision("running", trigger, f"{why}; a retrain is already running")
    if situation.last_retrain is not None and not force:
        ready = situation.last_retrain + policy.cooldown
        if situation.now < ready:
            return Decision(
                "cooling_down",
                trigger,
                f"{why}; cooling down until {ready:%Y-%m-%d %H:%M} (data time)",
            )
    # a change is learnt from labels of the chunks it changed, not from those before it:
    # retraining on the first day of a new world teaches the model too little of it
    have, where = {
        "estimate": (situation.degraded_labeled_rows, "of the degraded chunks"),
        "concept_drift": (situation.drifted_labeled_rows, "of the chunks out of the band"),
    }.get(trigger or "", (situation.labeled_rows, "in the window"))
    missing = policy.min_labeled_rows - have
    if missing > 0:
        return Decision(
            "waiting_for_labels",
            trigger,
            f"degraded ({why}), waiting for {missing:,} more labeled rows"
            f" ({have:,} of {policy.min_labeled_rows:,} {where})",
        )
    return Decision("due", trigger, why)


@dataclass(frozen=True)
class GateRule:
    """How a challenger is judged against the champion on the held-out rows."""

    metrics: Sequence[str]  # the first one decides; the others may not be lost
    min_gain: float  # the challenger must beat the champion on the first by this
    max_loss: float  # ... and lose no other by more than this
    auto_promote: bool  # False: a passing challenger stays a candidate


def gate_verdict(
    rule: GateRule, champion: dict[str, float], challenger: dict[str, float]
) -> tuple[str, str]:
    """promoted | candidate | rejected, with the figures that decided it."""
    primary = rule.metrics[0]
    compared = f"{primary} {challenger[primary]:.3f} vs the champion's {champion[primary]:.3f}"
    if not challenger[primary] >= champion[primary] + rule.min_gain:
        return "rejected", compared
    losses = [m for m in rule.metrics[1:] if challenger[m] < champion[m] - rule.max_loss]
    if losses:
        lost = ", ".join(f"{m} {challenger[m]:.3f} vs {champion[m]:.3f}" for m in losses)
        return "rejected", f"{lost} lost"
    return ("promoted" if rule.auto_promote else "candidate"), compared

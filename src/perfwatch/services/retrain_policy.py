"""The retrain policy applied to what the store knows.

Each cycle evaluates the policy (domain.retrain) and records the decisions that matter:
a trigger, a skip with its reason, the return to healthy. The retrain job
(services.retrain_job) runs when a decision says a retrain is due.
"""

import logging

from sqlalchemy import Engine
from sqlmodel import Session

from perfwatch.config import ModelSettings
from perfwatch.domain.durations import parse_duration
from perfwatch.domain.retrain import Decision, MetricChain, RetrainPolicy, Situation, decide
from perfwatch.domain.thresholds import ADJUSTED_OVER, firing, under_bar
from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.tables import ChunkEstimate, RetrainDecision

log = logging.getLogger(__name__)


def policy_of(model: ModelSettings) -> RetrainPolicy:
    return RetrainPolicy(
        enabled=model.retrain.enabled,
        consecutive=model.retrain.consecutive,
        cooldown=parse_duration(model.retrain.cooldown),
        min_labeled_rows=model.retrain.min_labeled_rows,
    )


def situation(session: Session, model: ModelSettings, model_id: int) -> Situation | None:
    """The policy's inputs, from the store; None before any data."""
    now = queries.watermark(session=session, model_id=model_id)
    if now is None:
        return None
    consecutive = model.retrain.consecutive
    estimates = queries.recent_complete_estimates(  # and before: see domain.thresholds.firing
        session=session, model_id=model_id, chunks=consecutive + ADJUSTED_OVER - 1
    )
    judged = queries.recent_realized(session=session, model_id=model_id, chunks=consecutive)
    champion = queries.champion(session=session, model_id=model_id)
    if champion is not None and champion.id is not None:
        # labels judge the model that served a chunk: those of the chunks before a
        # retrained champion took over say nothing about it (a retrain again on them
        # would learn what it has learnt, and the next promotion would win by noise)
        served_from = queries.serving_since(session=session, version_id=champion.id)
        judged = [r for r in judged if served_from is None or r.chunk_start >= served_from]
    newest = max((r.chunk_start for r in judged), default=None)
    newest_judged = [r for r in judged if r.chunk_start == newest]
    since = now - parse_duration(model.retrain.window)
    last = queries.last_retrain(session=session, model_id=model_id)
    return Situation(
        now=now,
        estimates=[
            MetricChain(metric, _alerts(model, [e for e in estimates if e.metric == metric]))
            for metric in model.metrics
        ],
        concept_drift=sorted(r.metric for r in newest_judged if r.concept_drift),
        labeled_rows=queries.labeled_since(session=session, model_id=model_id, since=since),
        degraded_labeled_rows=queries.labeled_since(
            session=session, model_id=model_id, since=since, only="alerting"
        ),
        drifted_labeled_rows=queries.labeled_since(
            session=session, model_id=model_id, since=since, only="out_of_band"
        ),
        last_retrain=last.data_time if last is not None else None,
        running=queries.running_retrain(session=session, model_id=model_id) is not None,
        realized_under_bar=[
            MetricChain(metric, [under_bar(r.value, r.bar) for r in judged if r.metric == metric])
            for metric in model.metrics
        ],
    )


def evaluate(
    engine: Engine, model: ModelSettings, model_id: int, *, force: bool = False, record: bool = True
) -> Decision | None:
    """Apply the policy now; record the decision when it differs from the last one."""
    with transaction(engine) as session:
        found = situation(session, model, model_id)
        champion = queries.champion(session=session, model_id=model_id)
        if found is None or champion is None or champion.id is None:
            return None
        decision = decide(policy_of(model), found, force=force)
        previous = queries.latest_decision(session=session, model_id=model_id)
        changed = previous is None or (previous.state, previous.reason) != (
            decision.state,
            decision.reason,
        )
        if (
            record
            and (changed or decision.retrain)
            and not (previous is None and decision.state == "healthy")
        ):
            session.add(
                RetrainDecision(
                    model_id=model_id,
                    version_id=champion.id,
                    data_time=found.now,
                    state=decision.state,
                    trigger=decision.trigger,
                    reason=decision.reason,
                    labeled_rows=found.labeled_rows,
                )
            )
            log.info("%s: retrain policy: %s: %s", model.name, decision.state, decision.reason)
    return decision


def _alerts(model: ModelSettings, chain: list[ChunkEstimate]) -> list[bool]:
    """Whether each of a metric's newest complete estimates alerts, by `alert_on`."""
    flags = firing(model.alert_on, [(e.alert, e.adjusted_alert) for e in chain])
    return flags[-model.retrain.consecutive :]

"""The retrain policy applied to what the store knows, and what a retrain would learn from.

Each cycle evaluates the policy (domain.retrain) and records the decisions that matter:
a trigger, a skip with its reason, the return to healthy. `retrain_manifest` lists the
exact data a retrain would use: the version's training set and the labeled production
rows of the window, batch by batch.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from perfwatch.config import ModelSettings, Settings
from perfwatch.domain.durations import parse_duration
from perfwatch.domain.retrain import Decision, MetricChain, RetrainPolicy, Situation, decide
from perfwatch.errors import PerfwatchError
from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.tables import RetrainDecision

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
    estimates = queries.recent_complete_estimates(
        session=session, model_id=model_id, chunks=consecutive
    )
    newest_judged = queries.recent_realized(session=session, model_id=model_id, chunks=1)
    since = now - parse_duration(model.retrain.window)
    last = queries.last_retrain(session=session, model_id=model_id)
    return Situation(
        now=now,
        estimates=[
            MetricChain(metric, [e.alert for e in estimates if e.metric == metric])
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


@dataclass
class Manifest:
    """What a retrain would learn from, and why."""

    decision: Decision
    training_path: str | None
    training_sha256: str | None
    window_start: datetime
    window_end: datetime
    batches: list[dict[str, Any]] = field(default_factory=list)  # per batch: labeled rows

    @property
    def appended_rows(self) -> int:
        return sum(b["labeled_rows"] for b in self.batches)

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": {
                "state": self.decision.state,
                "retrain": self.decision.retrain,
                "trigger": self.decision.trigger,
                "reason": self.decision.reason,
            },
            "training_data": {"path": self.training_path, "sha256": self.training_sha256},
            "window": {"start": self.window_start.isoformat(), "end": self.window_end.isoformat()},
            "appended_rows": self.appended_rows,
            "batches": [
                {
                    **b,
                    "data_start": b["data_start"].isoformat() if b["data_start"] else None,
                    "data_end": b["data_end"].isoformat() if b["data_end"] else None,
                }
                for b in self.batches
            ],
        }


def retrain_manifest(
    engine: Engine, settings: Settings, model: ModelSettings, *, force: bool = False
) -> Manifest:
    """The policy's decision (forced or not) and the exact data a retrain would use."""
    with transaction(engine) as session:
        record = queries.find_model(session=session, name=model.name)
        version = record and record.id and queries.champion(session=session, model_id=record.id)
        if not version or record is None or record.id is None:
            raise PerfwatchError(
                f"model {model.name!r} has no champion version yet",
                hint="run `perfwatch run --once` first (it registers version 1)",
            )
        now = queries.watermark(session=session, model_id=record.id)
        if now is None:
            raise PerfwatchError(
                f"model {model.name!r} has no production data yet",
                hint="drop batch files into its inbox and run a cycle",
            )
        since = now - parse_duration(model.retrain.window)
        starts = list(queries.chunk_row_counts(session=session, model_id=record.id, since=since))
        batches = queries.batches_in_chunks(
            session=session, model_id=record.id, chunk_starts=starts
        )
        model_id = record.id
    decision = evaluate(engine, model, model_id, force=force, record=False)
    assert decision is not None
    manifest = Manifest(
        decision=decision,
        training_path=version.training_path,
        training_sha256=version.training_sha256,
        window_start=since,
        window_end=now,
    )
    manifest.batches = _labeled_per_batch(engine, settings, model, model_id, starts, batches)
    return manifest


def _labeled_per_batch(
    engine: Engine,
    settings: Settings,
    model: ModelSettings,
    model_id: int,
    starts: list[datetime],
    batches: Any,
) -> list[dict[str, Any]]:
    """Labeled rows of the window, counted per batch (its file, content hash, data time)."""
    from perfwatch.ingest.rows import BATCH_COLUMN
    from perfwatch.services.labels import labeled_stored_rows

    if not starts:
        return []
    labeled = labeled_stored_rows(engine, settings, model, model_id, starts, [BATCH_COLUMN])
    counts = labeled.groupby(BATCH_COLUMN, observed=True).size()
    by_hash = {b.content_hash: b for b in batches}
    return [
        {
            "file": by_hash[str(content_hash)].file_name,
            "content_hash": str(content_hash),
            "labeled_rows": int(n),
            "data_start": by_hash[str(content_hash)].data_start,
            "data_end": by_hash[str(content_hash)].data_end,
        }
        for content_hash, n in sorted(counts.items(), key=lambda item: str(item[0]))
        if n and str(content_hash) in by_hash
    ]

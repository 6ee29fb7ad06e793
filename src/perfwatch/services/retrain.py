"""The retrain policy applied to what the store knows, and what a retrain would learn from.

Each cycle evaluates the policy (domain.retrain) and records the decisions that matter:
a trigger, a skip with its reason, the return to healthy. `retrain_manifest` lists the
exact data a retrain would use: the version's training set, the labeled production rows
of the window it would append, batch by batch, and the newest it would hold out; the
retrain job (services.retraining) selects its rows with the same functions.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlmodel import Session

from perfwatch.config import ModelSettings, Settings
from perfwatch.domain.chunks import CHUNK_COLUMN
from perfwatch.domain.durations import parse_duration
from perfwatch.domain.retrain import Decision, MetricChain, RetrainPolicy, Situation, decide
from perfwatch.domain.thresholds import under_bar
from perfwatch.errors import PerfwatchError
from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.tables import RetrainDecision

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
# The most rows held out: the gate judges on them, and a promotion makes them the new
# reference (which is bounded to as many). Beyond this, more rows sharpen neither the
# gate nor CBPE (they are better spent on training), while scoring them and CBPE's fit
# (its cost is per reference chunk) grow with them.
HOLDOUT_ROWS = 50_000


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
    judged = queries.recent_realized(session=session, model_id=model_id, chunks=consecutive)
    newest = max((r.chunk_start for r in judged), default=None)
    newest_judged = [r for r in judged if r.chunk_start == newest]
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


@dataclass
class Manifest:
    """What a retrain would learn from, and why."""

    decision: Decision
    training_path: str | None
    training_sha256: str | None
    window_start: datetime
    window_end: datetime
    # per batch: its labeled rows in the window, and of them the rows it would append
    batches: list[dict[str, Any]] = field(default_factory=list)
    holdout: dict[str, int] = field(default_factory=lambda: {"rows": 0, "chunks": 0})
    learnt_before: int = 0  # labeled rows the training set holds already (not appended)
    sliding: bool = False  # the window's rows alone, without the training set
    problem: str | None = None  # why a retrain would fail now

    @property
    def appended_rows(self) -> int:
        return sum(b["appended_rows"] for b in self.batches)

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
            "holdout": self.holdout,
            "learnt_before": self.learnt_before,
            "sliding": self.sliding,
            "problem": self.problem,
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
    from perfwatch.ingest.rows import BATCH_COLUMN
    from perfwatch.services.labels import labeled_stored_rows

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
        sliding=is_sliding(model, decision.trigger),
    )
    if starts:
        labeled = labeled_stored_rows(engine, settings, model, model_id, starts, [BATCH_COLUMN])
        _plan(manifest, model, labeled.rename(columns={BATCH_COLUMN: "batch"}), batches)
    return manifest


def _plan(manifest: Manifest, model: ModelSettings, labeled: "pd.DataFrame", batches: Any) -> None:
    """Split the labeled rows as the job would, and count them per batch."""
    appended = labeled
    try:
        learn, holdout = split_holdout(model, labeled)
        manifest.holdout = {"rows": len(holdout), "chunks": int(holdout[CHUNK_COLUMN].nunique())}
        learnt = _learnt(manifest, model)
        appended = learn if manifest.sliding else not_learnt(model, learnt, learn)
        manifest.learnt_before = len(learn) - len(appended)
    except PerfwatchError as exc:
        manifest.problem = exc.message
    counts = labeled.groupby("batch", observed=True).size()
    appended_counts = appended.groupby("batch", observed=True).size()
    by_hash = {b.content_hash: b for b in batches}
    manifest.batches = [
        {
            "file": by_hash[str(content_hash)].file_name,
            "content_hash": str(content_hash),
            "labeled_rows": int(n),
            "appended_rows": int(appended_counts.get(content_hash, 0)),
            "data_start": by_hash[str(content_hash)].data_start,
            "data_end": by_hash[str(content_hash)].data_end,
        }
        for content_hash, n in sorted(counts.items(), key=lambda item: str(item[0]))
        if n and str(content_hash) in by_hash
    ]


def _learnt(manifest: Manifest, model: ModelSettings) -> "pd.DataFrame":
    """The id and chunk of the production rows the training set holds (none for a
    training set from outside: only a retrained version's keeps them)."""
    import pandas as pd
    import pyarrow.parquet as pq

    path = Path(manifest.training_path) if manifest.training_path else None
    if path is None or path.suffix != ".parquet" or not path.is_file():
        return pd.DataFrame()
    names = pq.read_schema(path).names
    key = [c for c in (model.id_column, CHUNK_COLUMN) if c in names]
    return pd.read_parquet(path, columns=key) if len(key) == 2 else pd.DataFrame()


def is_sliding(model: ModelSettings, trigger: str | None) -> bool:
    """Whether a retrain learns from the window's rows alone (the old concept's training
    set would teach the old answers)."""
    return trigger == "concept_drift" and model.retrain.on_concept_drift == "sliding"


def split_holdout(
    model: ModelSettings, labeled: "pd.DataFrame"
) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Hold out the newest chunks that hold `holdout` of the labeled rows, at most about
    HOLDOUT_ROWS (at least one chunk): the rest is learnt from."""
    per_chunk = labeled.groupby(CHUNK_COLUMN).size().sort_index(ascending=False)
    wanted = min(model.retrain.holdout * len(labeled), HOLDOUT_ROWS)
    newest, held = [], 0
    for start, count in per_chunk.items():
        if held >= wanted:
            break
        newest.append(start)
        held += int(count)
    if len(newest) == len(per_chunk):
        raise PerfwatchError(
            "too few labeled chunks to learn from and still hold the newest out for the gate",
            hint="wait for labels of more chunks, or lower retrain.holdout",
        )
    in_holdout = labeled[CHUNK_COLUMN].isin(newest)
    return labeled[~in_holdout], labeled[in_holdout]


def not_learnt(
    model: ModelSettings, training: "pd.DataFrame", learn: "pd.DataFrame"
) -> "pd.DataFrame":
    """The window's rows the training set does not hold already: a retrained version's
    training set keeps the id and chunk of each production row it appended, and the
    window of the next retrain still holds them."""
    key = [model.id_column, CHUNK_COLUMN]
    if not set(key) <= set(training.columns):
        return learn  # a training set from outside: it holds no stored production row
    learnt = training[key].dropna().drop_duplicates().astype({CHUNK_COLUMN: "int64"})
    if learnt.empty:
        return learn
    seen = learn[key].merge(learnt.assign(__learnt=True), on=key, how="left")["__learnt"]
    return learn[seen.isna().to_numpy()]

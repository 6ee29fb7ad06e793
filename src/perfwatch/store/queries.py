"""Reads and writes of the store. Each takes `*, session` and never commits: callers do.

Kept free of pandas and nannyml so `perfwatch status` stays fast.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func
from sqlmodel import Session, SQLModel, col, select

from perfwatch.store.tables import (
    Batch,
    BatchChunk,
    ChunkEstimate,
    Cycle,
    Model,
    ModelVersion,
    ReferenceMetric,
    utcnow,
)


def upsert(
    *, session: Session, table: type[SQLModel], rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Insert rows; where a row with the same unique `keys` exists, update it instead."""
    if not rows:
        return
    # imported here: loading the dialects costs `status`, which never writes
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table.__table__)  # type: ignore[attr-defined]
    updates = {c: statement.excluded[c] for c in rows[0] if c not in keys}
    session.execute(
        statement.on_conflict_do_update(index_elements=list(keys), set_=updates), list(rows)
    )


# -- models and versions ------------------------------------------------------------------


def get_or_create_model(*, session: Session, name: str) -> Model:
    model = session.exec(select(Model).where(Model.name == name)).first()
    if model is None:
        model = Model(name=name)
        session.add(model)
        session.flush()
    return model


def find_model(*, session: Session, name: str) -> Model | None:
    return session.exec(select(Model).where(Model.name == name)).first()


def champion(*, session: Session, model_id: int) -> ModelVersion | None:
    return session.exec(
        select(ModelVersion).where(
            ModelVersion.model_id == model_id, ModelVersion.status == "champion"
        )
    ).first()


def next_version_number(*, session: Session, model_id: int) -> int:
    newest = session.exec(
        select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model_id)
    ).one()
    return (newest or 0) + 1


def retire_champion(*, session: Session, model_id: int) -> None:
    current = champion(session=session, model_id=model_id)
    if current is not None:
        current.status = "retired"
        session.add(current)


def reference_metrics(*, session: Session, version_id: int) -> dict[str, ReferenceMetric]:
    rows = session.exec(select(ReferenceMetric).where(ReferenceMetric.version_id == version_id))
    return {row.metric: row for row in rows}


# -- batches ------------------------------------------------------------------------------


def known_batches(
    *, session: Session, model_id: int, content_hashes: Sequence[str]
) -> dict[str, Batch]:
    """content hash -> batch, for the hashes already recorded (ingested or quarantined)."""
    rows = session.exec(
        select(Batch).where(Batch.model_id == model_id, col(Batch.content_hash).in_(content_hashes))
    )
    return {batch.content_hash: batch for batch in rows}


def batches_in_chunks(
    *, session: Session, model_id: int, chunk_starts: Sequence[datetime]
) -> Sequence[Batch]:
    """The ingested batches holding rows of any of these chunks."""
    if not chunk_starts:
        return []
    batch_ids = select(BatchChunk.batch_id).where(
        BatchChunk.model_id == model_id, col(BatchChunk.chunk_start).in_(chunk_starts)
    )
    return session.exec(
        select(Batch).where(col(Batch.id).in_(batch_ids)).order_by(col(Batch.id))
    ).all()


def chunk_row_counts(
    *, session: Session, model_id: int, since: datetime | None = None
) -> dict[datetime, tuple[datetime, int]]:
    """chunk start -> (chunk end, rows stored) for every chunk with data (since a start)."""
    query = (
        select(BatchChunk.chunk_start, BatchChunk.chunk_end, func.sum(BatchChunk.rows))
        .where(BatchChunk.model_id == model_id)
        .group_by(col(BatchChunk.chunk_start), col(BatchChunk.chunk_end))
    )
    if since is not None:
        query = query.where(BatchChunk.chunk_start >= since)
    return {start: (end, int(rows)) for start, end, rows in session.exec(query)}


def watermark(*, session: Session, model_id: int) -> datetime | None:
    """The newest data time ingested for the model."""
    return session.exec(
        select(func.max(Batch.data_end)).where(
            Batch.model_id == model_id, Batch.status == "ingested"
        )
    ).one()


# -- estimates ----------------------------------------------------------------------------


def estimated_chunks(
    *, session: Session, version_id: int, since: datetime | None = None
) -> dict[datetime, tuple[int, bool]]:
    """chunk start -> (rows the estimate saw, provisional) for a version's estimates."""
    any_provisional = func.max(case((col(ChunkEstimate.provisional), 1), else_=0))
    query = (
        select(ChunkEstimate.chunk_start, func.min(ChunkEstimate.rows), any_provisional)
        .where(ChunkEstimate.version_id == version_id)
        .group_by(col(ChunkEstimate.chunk_start))
    )
    if since is not None:
        query = query.where(ChunkEstimate.chunk_start >= since)
    return {
        start: (int(rows), bool(provisional)) for start, rows, provisional in session.exec(query)
    }


# -- cycles -------------------------------------------------------------------------------


def interrupt_running_cycles(*, session: Session, model_id: int) -> int:
    """Cycles left 'running' by a killed process: mark them interrupted."""
    stale = session.exec(
        select(Cycle).where(Cycle.model_id == model_id, Cycle.status == "running")
    ).all()
    for cycle in stale:
        cycle.status, cycle.finished_at = "interrupted", utcnow()
        cycle.error = "the process ended before the cycle finished"
        session.add(cycle)
    return len(stale)

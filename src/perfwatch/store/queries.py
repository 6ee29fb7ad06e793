"""Reads and writes of the store. Each takes `*, session` and never commits: callers do.

Kept free of pandas and nannyml so `perfwatch status` stays fast.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, case, func, or_
from sqlmodel import Session, SQLModel, col, select

from perfwatch.domain.chunks import chunk_ns
from perfwatch.store.tables import (
    Alert,
    Batch,
    BatchChunk,
    ChunkDrift,
    ChunkEstimate,
    ChunkLabels,
    ChunkRealized,
    ChunkTrust,
    Cycle,
    DataQualityFinding,
    Label,
    LabelChunk,
    LabelConflict,
    LabelFile,
    Model,
    ModelVersion,
    Notification,
    ReferenceMetric,
    RetrainDecision,
    RetrainRun,
    WebhookTarget,
    utcnow,
)

Recorded = TypeVar("Recorded", Batch, LabelFile)  # a file from an inbox, as recorded
Measured = TypeVar("Measured", ChunkDrift, ChunkRealized, ChunkTrust)  # a figure of a chunk


def _dialect_insert(session: Session) -> Any:
    # imported here: loading the dialects costs `status`, which never writes
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def upsert(
    *, session: Session, table: type[SQLModel], rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Insert rows; where a row with the same unique `keys` exists, update it instead."""
    if not rows:
        return
    statement = _dialect_insert(session)(table.__table__)  # type: ignore[attr-defined]
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


def bar_version(*, session: Session, model_id: int) -> ModelVersion | None:
    """The version whose thresholds are the model's bar: the one `rebaseline` chose, else
    the first version."""
    model = session.get(Model, model_id)
    if model is not None and model.bar_version_id is not None:
        return session.get(ModelVersion, model.bar_version_id)
    return session.exec(
        select(ModelVersion)
        .where(ModelVersion.model_id == model_id)
        .order_by(col(ModelVersion.version))
        .limit(1)
    ).first()


# -- batches ------------------------------------------------------------------------------


def known_files(
    *, session: Session, kind: type[Recorded], model_id: int, content_hashes: Sequence[str]
) -> dict[str, Recorded]:
    """content hash -> the batch or label file (`kind`), for the hashes already recorded
    (ingested or quarantined: at most one per content, see ingest.inbox.settled)."""
    rows = session.exec(
        select(kind).where(kind.model_id == model_id, col(kind.content_hash).in_(content_hashes))
    )
    return {record.content_hash: record for record in rows}


@dataclass(frozen=True)
class StoredFile:
    """What reading a recorded file's rows back needs, without an ORM object: loading a
    few hundred Batch objects cost a cycle 50 ms a query."""

    file_name: str
    content_hash: str
    stored_path: str | None
    data_start: datetime | None = None
    data_end: datetime | None = None


def batches_in_chunks(
    *, session: Session, model_id: int, chunk_starts: Sequence[datetime]
) -> list[StoredFile]:
    """The ingested batches holding rows of any of these chunks, in the order recorded."""
    columns = (Batch.file_name, Batch.content_hash, Batch.stored_path, Batch.data_start)
    return _files_in_chunks(
        session, (*columns, Batch.data_end), BatchChunk.batch_id, model_id, chunk_starts
    )


def _files_in_chunks(
    session: Session,
    columns: tuple[Any, ...],
    link: Any,
    model_id: int,
    chunk_starts: Sequence[datetime],
) -> list[StoredFile]:
    """The batches or label files (their `columns`, a StoredFile's first fields) that
    `link` (the file's column of its chunk map) ties to any of these chunks, in the order
    they were recorded."""
    if not chunk_starts:
        return []
    chunks, files = link.class_, columns[0].class_
    ids = select(link).where(chunks.model_id == model_id, col(chunks.chunk_start).in_(chunk_starts))
    query = select(*columns).where(col(files.id).in_(ids)).order_by(col(files.id))
    return [StoredFile(*row) for row in session.exec(query)]


def chunk_row_counts(
    *, session: Session, model_id: int, since: datetime | None = None
) -> dict[datetime, tuple[datetime, int]]:
    """chunk start -> (chunk end, rows stored) for every chunk with data (since a start)."""
    # a row chunk's batches may know different ends: the latest is the chunk's
    query = (
        select(BatchChunk.chunk_start, func.max(BatchChunk.chunk_end), func.sum(BatchChunk.rows))
        .where(BatchChunk.model_id == model_id)
        .group_by(col(BatchChunk.chunk_start))
    )
    if since is not None:
        query = query.where(BatchChunk.chunk_start >= since)
    return {start: (end, int(rows)) for start, end, rows in session.exec(query)}


def mature_chunks(*, session: Session, model_id: int, since: datetime) -> set[datetime]:
    """The chunks since a start whose labels are final (complete, and `label_horizon` of
    data time past their end, as the last realized computation found them)."""
    query = select(ChunkLabels.chunk_start).where(
        ChunkLabels.model_id == model_id,
        ChunkLabels.chunk_start >= since,
        col(ChunkLabels.mature).is_(True),
    )
    return set(session.exec(query))


def open_chunk(*, session: Session, model_id: int) -> tuple[int, int] | None:
    """The newest chunk's start (ns) and its rows: where row chunks continue."""
    newest = session.exec(
        select(func.max(BatchChunk.chunk_start)).where(BatchChunk.model_id == model_id)
    ).one()
    if newest is None:
        return None
    rows = session.exec(
        select(func.sum(BatchChunk.rows)).where(
            BatchChunk.model_id == model_id, BatchChunk.chunk_start == newest
        )
    ).one()
    return chunk_ns(newest), int(rows or 0)


def stored_chunk_length(*, session: Session, model_id: int) -> Any:
    """The length (a timedelta) of the chunks the model's history is stored in, or None
    before any batch."""
    first = session.exec(
        select(BatchChunk.chunk_start, BatchChunk.chunk_end)
        .where(BatchChunk.model_id == model_id)
        .limit(1)
    ).first()
    return None if first is None else first[1] - first[0]


def watermark(*, session: Session, model_id: int) -> datetime | None:
    """The newest data time ingested for the model."""
    return session.exec(
        select(func.max(Batch.data_end)).where(
            Batch.model_id == model_id, Batch.status == "ingested"
        )
    ).one()


# -- labels -------------------------------------------------------------------------------


def label_files_in_chunks(
    *, session: Session, model_id: int, chunk_starts: Sequence[datetime]
) -> list[StoredFile]:
    """The ingested label files whose segments hold labels of any of these chunks."""
    columns = (LabelFile.file_name, LabelFile.content_hash, LabelFile.stored_path)
    return _files_in_chunks(session, columns, LabelChunk.label_file_id, model_id, chunk_starts)


def held_targets(*, session: Session, model_id: int) -> dict[str, int]:
    """row id -> target of the labels still waiting for their row."""
    query = select(Label.row_id, Label.target).where(
        Label.model_id == model_id, col(Label.chunk_start).is_(None)
    )
    return {row_id: int(target) for row_id, target in session.exec(query)}


def add_labeled(
    *, session: Session, model_id: int, counts: dict[datetime, tuple[datetime, int]]
) -> None:
    """Count newly matched labels into their chunks (chunk start -> (end, labels))."""
    if not counts:
        return
    statement = _dialect_insert(session)(ChunkLabels.__table__)  # type: ignore[attr-defined]
    statement = statement.on_conflict_do_update(
        index_elements=["model_id", "chunk_start"],
        set_={"labeled": ChunkLabels.__table__.c.labeled + statement.excluded.labeled},  # type: ignore[attr-defined]
    )
    rows = [
        {"model_id": model_id, "chunk_start": start, "chunk_end": end, "labeled": n}
        for start, (end, n) in counts.items()
    ]
    session.execute(statement, rows)


def held_labels(*, session: Session, model_id: int) -> list[tuple[int, str]]:
    """(label id, row id) of the labels whose row has not been seen yet."""
    query = select(Label.id, Label.row_id).where(
        Label.model_id == model_id, col(Label.chunk_start).is_(None)
    )
    return [(int(id_ or 0), row_id) for id_, row_id in session.exec(query)]  # ids are set


def match_held(*, session: Session, matches: Sequence[dict[str, Any]]) -> None:
    """Give held labels their chunk and their row's served figures (dicts keyed by
    label_id, chunk_start, row_time, score, prediction)."""
    from sqlalchemy import bindparam, update

    if not matches:
        return
    table = Label.__table__  # type: ignore[attr-defined]
    statement = (
        update(table)
        .where(table.c.id == bindparam("label_id"))
        .values(
            chunk_start=bindparam("new_chunk_start"),
            row_time=bindparam("new_row_time"),
            score=bindparam("new_score"),
            prediction=bindparam("new_prediction"),
        )
    )
    # bind names must differ from the columns they set
    rows = [{k if k == "label_id" else f"new_{k}": v for k, v in m.items()} for m in matches]
    session.connection().execute(statement, rows)


def date_held(*, session: Session, model_id: int, watermark: datetime | None) -> None:
    """Held labels that came before any data count as held from the data time now."""
    from sqlalchemy import update

    if watermark is None:
        return
    session.execute(
        update(Label)
        .where(
            col(Label.model_id) == model_id,
            col(Label.chunk_start).is_(None),
            col(Label.held_since).is_(None),
        )
        .values(held_since=watermark)
    )


def label_counts(
    *, session: Session, model_id: int, grace_before: datetime | None
) -> dict[str, int]:
    """held: labels waiting for their row; unmatched: held since before `grace_before`;
    conflicts: contradicting labels recorded."""
    held_since = col(Label.held_since)
    unmatched = case((held_since < grace_before, 1), else_=0) if grace_before else 0
    held, late = session.exec(
        select(func.count(), func.coalesce(func.sum(unmatched), 0)).where(
            Label.model_id == model_id, col(Label.chunk_start).is_(None)
        )
    ).one()
    conflicts = session.exec(select(func.count()).where(LabelConflict.model_id == model_id)).one()
    return {"held": int(held), "unmatched": int(late), "conflicts": int(conflicts)}


def matched_labels(
    *, session: Session, model_id: int, chunk_starts: Sequence[datetime]
) -> list[Label]:
    """The once-held labels now matched to these chunks."""
    query = select(Label).where(
        Label.model_id == model_id, col(Label.chunk_start).in_(chunk_starts)
    )
    return list(session.exec(query))


def chunk_labels_since(
    *, session: Session, model_id: int, since: datetime | None
) -> list[ChunkLabels]:
    """The label counts of the chunks since a start (of every chunk with None)."""
    query = select(ChunkLabels).where(ChunkLabels.model_id == model_id)
    if since is not None:
        query = query.where(ChunkLabels.chunk_start >= since)
    return list(session.exec(query))


def realized_since(*, session: Session, model_id: int, since: datetime) -> list[ChunkRealized]:
    query = select(ChunkRealized).where(
        ChunkRealized.model_id == model_id, ChunkRealized.chunk_start >= since
    )
    return list(session.exec(query))


def delete_realized(*, session: Session, model_id: int, chunk_starts: Sequence[datetime]) -> None:
    """Forget realized values of chunks that no longer qualify (more rows, less coverage)."""
    from sqlalchemy import delete

    if chunk_starts:
        session.execute(
            delete(ChunkRealized).where(
                col(ChunkRealized.model_id) == model_id,
                col(ChunkRealized.chunk_start).in_(chunk_starts),
            )
        )


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


def complete_estimates_since(
    *, session: Session, version_id: int, since: datetime
) -> list[ChunkEstimate]:
    """A version's estimates of complete chunks that end after `since`."""
    query = select(ChunkEstimate).where(
        ChunkEstimate.version_id == version_id,
        col(ChunkEstimate.provisional).is_(False),
        ChunkEstimate.chunk_end > since,
    )
    return list(session.exec(query))


def estimates_of_chunks(
    *, session: Session, model_id: int, chunk_starts: Sequence[datetime]
) -> dict[tuple[datetime, str], ChunkEstimate]:
    """(chunk start, metric) -> the estimate by the newest version that estimated it."""
    found: dict[tuple[datetime, str], ChunkEstimate] = {}
    if not chunk_starts:
        return found
    query = (
        select(ChunkEstimate)
        .where(ChunkEstimate.model_id == model_id, col(ChunkEstimate.chunk_start).in_(chunk_starts))
        .order_by(col(ChunkEstimate.version_id))
    )
    for estimate in session.exec(query):
        found[(estimate.chunk_start, estimate.metric)] = estimate
    return found


# -- feature drift ------------------------------------------------------------------------


def drift_rows(*, session: Session, version_id: int, since: datetime) -> dict[datetime, int]:
    """chunk start -> rows measured, for a version's drift figures since a start."""
    query = (
        select(ChunkDrift.chunk_start, func.min(ChunkDrift.rows))
        .where(ChunkDrift.version_id == version_id, ChunkDrift.chunk_start >= since)
        .group_by(col(ChunkDrift.chunk_start))
    )
    return {start: int(rows) for start, rows in session.exec(query)}


def drift_since(*, session: Session, version_id: int, since: datetime) -> list[ChunkDrift]:
    query = select(ChunkDrift).where(
        ChunkDrift.version_id == version_id, ChunkDrift.chunk_start >= since
    )
    return list(session.exec(query))


def _newest_starts(
    session: Session,
    table: type[ChunkDrift] | type[ChunkRealized] | type[ChunkEstimate] | type[ChunkTrust],
    where: Any,
    chunks: int,
) -> Sequence[datetime]:
    """The newest `chunks` chunk starts among a table's rows that match `where`."""
    start = col(table.chunk_start)
    return session.exec(
        select(start).where(where).group_by(start).order_by(start.desc()).limit(chunks)
    ).all()


def _in_newest_chunks(
    session: Session, table: type[Measured], where: Any, chunks: int, then: Any
) -> list[Measured]:
    """A table's rows that match `where` in its newest `chunks` chunks, by chunk, then by
    `then` (a column)."""
    starts = _newest_starts(session, table, where, chunks)
    query = (
        select(table)
        .where(where, col(table.chunk_start).in_(starts))
        .order_by(col(table.chunk_start), col(then))
    )
    return list(session.exec(query))


def recent_drift(*, session: Session, version_id: int, chunks: int) -> list[ChunkDrift]:
    """The drift figures of the newest `chunks` measured chunks, oldest first."""
    of_version = col(ChunkDrift.version_id) == version_id
    return _in_newest_chunks(session, ChunkDrift, of_version, chunks, ChunkDrift.feature)


def recent_trust(*, session: Session, version_id: int, chunks: int) -> list[ChunkTrust]:
    """A version's trust in its newest `chunks` measured chunks, oldest first."""
    of_version = col(ChunkTrust.version_id) == version_id
    return _in_newest_chunks(session, ChunkTrust, of_version, chunks, ChunkTrust.chunk_start)


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


# -- alerts -------------------------------------------------------------------------------


def open_alerts(*, session: Session, model_id: int) -> dict[tuple[str, str], Alert]:
    query = select(Alert).where(Alert.model_id == model_id, col(Alert.closed_at).is_(None))
    return {(a.kind, a.subject): a for a in session.exec(query)}


def recent_complete_estimates(
    *, session: Session, model_id: int, chunks: int
) -> list[ChunkEstimate]:
    """The estimates of the newest `chunks` complete chunks, by the newest version of each,
    oldest chunk first."""
    complete = and_(
        col(ChunkEstimate.model_id) == model_id, col(ChunkEstimate.provisional).is_(False)
    )
    starts = _newest_starts(session, ChunkEstimate, complete, chunks)
    newest = estimates_of_chunks(session=session, model_id=model_id, chunk_starts=list(starts))
    return sorted(newest.values(), key=lambda e: (e.chunk_start, e.metric))


def recent_realized(*, session: Session, model_id: int, chunks: int) -> list[ChunkRealized]:
    """The realized rows of the newest `chunks` judged chunks, oldest first."""
    of_model = col(ChunkRealized.model_id) == model_id
    return _in_newest_chunks(session, ChunkRealized, of_model, chunks, ChunkRealized.metric)


def findings_per_column(
    *, session: Session, model_id: int, chunk_starts: Sequence[datetime]
) -> dict[tuple[datetime, str, str], int]:
    """(chunk start, column, kind) -> findings counted in these chunks."""
    query = (
        select(
            DataQualityFinding.chunk_start,
            DataQualityFinding.column,
            DataQualityFinding.kind,
            func.sum(DataQualityFinding.count),
        )
        .where(
            DataQualityFinding.model_id == model_id,
            col(DataQualityFinding.chunk_start).in_(chunk_starts),
        )
        .group_by(
            col(DataQualityFinding.chunk_start),
            col(DataQualityFinding.column),
            col(DataQualityFinding.kind),
        )
    )
    return {(start, column, kind): int(n) for start, column, kind, n in session.exec(query)}


def recent_file_cycles(*, session: Session, model_id: int, cycles: int) -> list[Cycle]:
    """The newest `cycles` cycles that handled batch files, oldest first."""
    query = (
        select(Cycle)
        .where(Cycle.model_id == model_id, (col(Cycle.batches) + col(Cycle.quarantined)) > 0)
        .order_by(col(Cycle.id).desc())
        .limit(cycles)
    )
    return list(reversed(session.exec(query).all()))


def recent_skew_cycles(*, session: Session, model_id: int, cycles: int) -> list[Cycle]:
    """The newest `cycles` finished cycles that re-scored served scores (or failed to),
    oldest first."""
    checked = or_(col(Cycle.skew_checked) > 0, col(Cycle.skew_error).is_not(None))
    query = (
        select(Cycle)
        .where(Cycle.model_id == model_id, checked, Cycle.status != "running")
        .order_by(col(Cycle.id).desc())
        .limit(cycles)
    )
    return list(reversed(session.exec(query).all()))


# -- retraining ---------------------------------------------------------------------------


def latest_decision(*, session: Session, model_id: int) -> RetrainDecision | None:
    return session.exec(
        select(RetrainDecision)
        .where(RetrainDecision.model_id == model_id)
        .order_by(col(RetrainDecision.id).desc())
        .limit(1)
    ).first()


def labeled_since(
    *, session: Session, model_id: int, since: datetime, only: str | None = None
) -> int:
    """Labeled production rows in the mature chunks since a start (what a retrain can learn
    from: an immature chunk may hold its early labels only, failures); `only="alerting"`:
    in chunks whose estimate was under its threshold; `only="out_of_band"`: in chunks
    whose realized value fell out of the estimate's band."""
    query = select(func.sum(ChunkLabels.labeled)).where(
        ChunkLabels.model_id == model_id,
        ChunkLabels.chunk_start >= since,
        col(ChunkLabels.mature).is_(True),
    )
    if only == "alerting":
        degraded = select(ChunkEstimate.chunk_start).where(
            ChunkEstimate.model_id == model_id,
            col(ChunkEstimate.alert).is_(True),
            col(ChunkEstimate.provisional).is_(False),
        )
        query = query.where(col(ChunkLabels.chunk_start).in_(degraded))
    elif only == "out_of_band":
        drifted = select(ChunkRealized.chunk_start).where(
            ChunkRealized.model_id == model_id, col(ChunkRealized.out_of_band).is_(True)
        )
        query = query.where(col(ChunkLabels.chunk_start).in_(drifted))
    return int(session.exec(query).one() or 0)


def running_retrain(*, session: Session, model_id: int) -> RetrainRun | None:
    return session.exec(
        select(RetrainRun).where(RetrainRun.model_id == model_id, RetrainRun.status == "running")
    ).first()


def serving_since(*, session: Session, version_id: int) -> datetime | None:
    """The data time from which a retrained version served (its retrain's newest data);
    None for a version registered otherwise (version 1, `perfwatch register`)."""
    return session.exec(
        select(RetrainRun.data_time).where(RetrainRun.version_id == version_id)
    ).first()


def last_retrain(*, session: Session, model_id: int) -> RetrainRun | None:
    """The newest retrain that did not fail (its data time starts the cooldown)."""
    return session.exec(
        select(RetrainRun)
        .where(RetrainRun.model_id == model_id, RetrainRun.status != "failed")
        .order_by(col(RetrainRun.id).desc())
        .limit(1)
    ).first()


def fail_running_retrains(*, session: Session, model_id: int, host: str, alive: Any) -> int:
    """Runs on this host left 'running' by a process that is gone: failed, with that reason.
    `alive(pid)` says whether a process still runs."""
    running = session.exec(
        select(RetrainRun).where(
            RetrainRun.model_id == model_id, RetrainRun.status == "running", RetrainRun.host == host
        )
    ).all()
    stale = [run for run in running if not alive(run.pid)]
    for run in stale:
        run.status, run.finished_at = "failed", utcnow()
        run.error = "the process ended before the retrain finished"
        session.add(run)
    return len(stale)


# -- notifications -----------------------------------------------------------------------


def webhook_target(*, session: Session, key: str, host: str) -> WebhookTarget:
    """The target of this key, created (first seen now) when new."""
    target = session.get(WebhookTarget, key)
    if target is None:
        target = WebhookTarget(key=key, host=host)
        session.add(target)
        session.flush()
    return target


def alerts_changed_since(*, session: Session, since: datetime) -> Sequence[tuple[Alert, str]]:
    """Alerts opened or closed since then, with their model's name."""
    return session.exec(
        select(Alert, Model.name)
        .join(Model, col(Model.id) == col(Alert.model_id))
        .where((col(Alert.opened_at) >= since) | (col(Alert.closed_at) >= since))
        .order_by(col(Alert.id))
    ).all()


def retrains_decided_since(
    *, session: Session, since: datetime
) -> Sequence[tuple[RetrainRun, str, int | None]]:
    """Finished retrain runs since then, with their model's name and registered version."""
    return session.exec(
        select(RetrainRun, Model.name, ModelVersion.version)
        .join(Model, col(Model.id) == col(RetrainRun.model_id))
        .outerjoin(ModelVersion, col(ModelVersion.id) == col(RetrainRun.version_id))
        .where(col(RetrainRun.finished_at) >= since, col(RetrainRun.decision).is_not(None))
        .order_by(col(RetrainRun.id))
    ).all()


def notified_events(*, session: Session, target: str, since: datetime) -> set[str]:
    return set(
        session.exec(
            select(Notification.event).where(
                Notification.target == target, col(Notification.created_at) >= since
            )
        ).all()
    )


def pending_notifications(*, session: Session, target: str, limit: int) -> Sequence[Notification]:
    """The oldest undelivered messages of a target, in the order their events happened."""
    return session.exec(
        select(Notification)
        .where(Notification.target == target, col(Notification.delivered_at).is_(None))
        .order_by(col(Notification.id))
        .limit(limit)
    ).all()


def delivered_since(*, session: Session, target: str, since: datetime) -> int:
    return session.exec(
        select(func.count())
        .select_from(Notification)
        .where(Notification.target == target, col(Notification.delivered_at) >= since)
    ).one()


def cycles_to_tell(*, session: Session, since: datetime) -> Sequence[tuple[Cycle, str]]:
    """Finished cycles since then that took in files or did not end well, with their
    model's name: the runs a data catalog is told of (services.lineage)."""
    worth = (col(Cycle.batches) + col(Cycle.quarantined) + col(Cycle.labels) > 0) | col(
        Cycle.status
    ).in_(("failed", "interrupted", "stopped"))
    return session.exec(
        select(Cycle, Model.name)
        .join(Model, col(Model.id) == col(Cycle.model_id))
        .where(col(Cycle.finished_at) >= since, col(Cycle.status) != "skipped", worth)
        .order_by(col(Cycle.id))
    ).all()


def retrains_since(*, session: Session, since: datetime) -> Sequence[tuple[RetrainRun, str]]:
    """Retrain runs started or finished since then, with their model's name."""
    return session.exec(
        select(RetrainRun, Model.name)
        .join(Model, col(Model.id) == col(RetrainRun.model_id))
        .where((col(RetrainRun.started_at) >= since) | (col(RetrainRun.finished_at) >= since))
        .order_by(col(RetrainRun.id))
    ).all()


def files_recorded_in(
    *, session: Session, window: tuple[int, datetime, datetime]
) -> list[tuple[str, Batch | LabelFile]]:
    """The batch and label files a model recorded between these times (a cycle's), as
    ("batch" | "labels", record)."""
    model_id, start, end = window
    batches = session.exec(
        select(Batch)
        .where(Batch.model_id == model_id, col(Batch.ingested_at).between(start, end))
        .order_by(col(Batch.id))
    ).all()
    labels = session.exec(
        select(LabelFile)
        .where(LabelFile.model_id == model_id, col(LabelFile.ingested_at).between(start, end))
        .order_by(col(LabelFile.id))
    ).all()
    return [("batch", b) for b in batches] + [("labels", f) for f in labels]


def estimates_made_in(
    *, session: Session, window: tuple[int, datetime, datetime]
) -> list[tuple[int, datetime, str, float, bool]]:
    """The estimates a model made between these times: (version number, chunk start,
    metric, value, alert)."""
    model_id, start, end = window
    rows = session.exec(
        select(ChunkEstimate, ModelVersion.version)
        .join(ModelVersion, col(ModelVersion.id) == col(ChunkEstimate.version_id))
        .where(
            ChunkEstimate.model_id == model_id,
            col(ChunkEstimate.estimated_at).between(start, end),
        )
    ).all()
    return [(int(v), e.chunk_start, e.metric, float(e.value), bool(e.alert)) for e, v in rows]


def retrain_versions(
    *, session: Session, run: RetrainRun
) -> tuple[ModelVersion | None, ModelVersion | None]:
    """A retrain's parent version and the version it registered (if any)."""
    parent = session.get(ModelVersion, run.parent_version_id)
    made = session.get(ModelVersion, run.version_id) if run.version_id is not None else None
    return parent, made

"""The read path behind `status` and `history`: SQLAlchemy Core only, no ORM, no SQLModel.

`status` must answer in well under a second, and importing SQLModel (with pydantic and
the ORM mappers) costs about as much as all the rest. These light views name only the
columns read here; a test checks each against the tables in `perfwatch.store.tables`.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Connection, Float, Integer, String, Text, column, func, select
from sqlalchemy import table as view

from perfwatch.store.types import UTCDateTime

model = view("model", column("id", Integer), column("name", String))
model_version = view(
    "model_version",
    column("id", Integer),
    column("model_id", Integer),
    column("version", Integer),
    column("status", String),
)
batch = view(
    "batch",
    column("id", Integer),
    column("model_id", Integer),
    column("file_name", String),
    column("status", String),
    column("reason", Text),
    column("rows", Integer),
    column("ingested_at", UTCDateTime),
)
cycle = view(
    "cycle",
    column("id", Integer),
    column("model_id", Integer),
    column("started_at", UTCDateTime),
    column("finished_at", UTCDateTime),
    column("status", String),
    column("error", Text),
    column("rows", Integer),
    column("batches", Integer),
    column("quarantined", Integer),
)
chunk_estimate = view(
    "chunk_estimate",
    column("model_id", Integer),
    column("version_id", Integer),
    column("chunk_start", UTCDateTime),
    column("chunk_end", UTCDateTime),
    column("metric", String),
    column("value", Float),
    column("lower", Float),
    column("upper", Float),
    column("threshold", Float),
    column("bar", Float),
    column("alert", Boolean),
    column("provisional", Boolean),
    column("rows", Integer),
    column("adjusted", Float),
    column("adjusted_lower", Float),
    column("adjusted_upper", Float),
    column("adjusted_alert", Boolean),
    column("adjusted_labels", Integer),
    column("adjusted_reason", String),
)
finding = view(
    "data_quality_finding",
    column("model_id", Integer),
    column("chunk_start", UTCDateTime),
    column("column", String),
    column("kind", String),
    column("count", Integer),
)
chunk_labels = view(
    "chunk_labels",
    column("model_id", Integer),
    column("chunk_start", UTCDateTime),
    column("chunk_end", UTCDateTime),
    column("labeled", Integer),
    column("computed_rows", Integer),
    column("coverage", Float),
    column("mature", Boolean),
)
chunk_realized = view(
    "chunk_realized",
    column("model_id", Integer),
    column("chunk_start", UTCDateTime),
    column("chunk_end", UTCDateTime),
    column("metric", String),
    column("value", Float),
    column("labeled_rows", Integer),
    column("estimated", Float),
    column("out_of_band", Boolean),
    column("concept_drift", Boolean),
    column("magnitude", Float),
    column("impact", Float),
    column("bar", Float),
)
label = view(
    "label",
    column("model_id", Integer),
    column("chunk_start", UTCDateTime),
)
label_file = view(
    "label_file",
    column("model_id", Integer),
    column("file_name", String),
    column("status", String),
    column("reason", Text),
    column("stored", Integer),
    column("conflicts", Integer),
    column("ingested_at", UTCDateTime),
)
alignment_check = view(
    "alignment_check",
    column("id", Integer),
    column("model_id", Integer),
    column("version_id", Integer),
    column("sample_name", String),
    column("rows", Integer),
    column("verdict", String),
    column("figures", Text),
    column("checked_at", UTCDateTime),
)
alert = view(
    "alert",
    column("id", Integer),
    column("model_id", Integer),
    column("kind", String),
    column("subject", String),
    column("chunk_start", UTCDateTime),
    column("value", Float),
    column("message", Text),
    column("opened_at", UTCDateTime),
    column("closed_at", UTCDateTime),
)
chunk_drift = view(
    "chunk_drift",
    column("model_id", Integer),
    column("version_id", Integer),
    column("chunk_start", UTCDateTime),
    column("feature", String),
    column("method", String),
    column("value", Float),
    column("threshold", Float),
    column("p_value", Float),
    column("alert", Boolean),
)
chunk_trust = view(
    "chunk_trust",
    column("model_id", Integer),
    column("version_id", Integer),
    column("chunk_start", UTCDateTime),
    column("out_of_domain_share", Float),
    column("domain_auc", Float),
    column("reliable", Boolean),
    column("reason", String),
)
retrain_decision = view(
    "retrain_decision",
    column("id", Integer),
    column("model_id", Integer),
    column("decided_at", UTCDateTime),
    column("data_time", UTCDateTime),
    column("state", String),
    column("trigger", String),
    column("reason", Text),
    column("labeled_rows", Integer),
)
retrain_run = view(
    "retrain_run",
    column("id", Integer),
    column("model_id", Integer),
    column("version_id", Integer),
    column("status", String),
    column("decision", String),
    column("trigger", String),
    column("error", Text),
    column("parent_version_id", Integer),
    column("manifest", Text),
    column("gate", Text),
    column("data_time", UTCDateTime),
    column("started_at", UTCDateTime),
    column("finished_at", UTCDateTime),
)
daemon_lease = view(
    "daemon_lease",
    column("name", String),
    column("host", String),
    column("pid", Integer),
    column("started_at", UTCDateTime),
    column("heartbeat_at", UTCDateTime),
    column("stopped_at", UTCDateTime),
)
notification = view(
    "notification",
    column("id", Integer),
    column("created_at", UTCDateTime),
    column("delivered_at", UTCDateTime),
    column("last_error", Text),
)
VIEWS = (
    model,
    model_version,
    alignment_check,
    batch,
    cycle,
    chunk_estimate,
    finding,
    chunk_labels,
    chunk_realized,
    label,
    label_file,
    alert,
    chunk_drift,
    chunk_trust,
    retrain_decision,
    retrain_run,
    daemon_lease,
    notification,
)

Row = dict[str, Any]


def model_ids(connection: Connection) -> dict[str, int]:
    return {name: id_ for id_, name in connection.execute(select(model.c.id, model.c.name))}


def versions(connection: Connection, model_id: int) -> tuple[dict[int, int], int | None]:
    """(version id -> version number, the champion's number)."""
    rows = connection.execute(
        select(model_version.c.id, model_version.c.version, model_version.c.status).where(
            model_version.c.model_id == model_id
        )
    ).all()
    champion = next((number for _, number, status in rows if status == "champion"), None)
    return {id_: number for id_, number, _ in rows}, champion


def last_cycle(connection: Connection, model_id: int) -> Row | None:
    row = (
        connection.execute(
            select(cycle)
            .where(cycle.c.model_id == model_id)
            .order_by(cycle.c.started_at.desc(), cycle.c.id.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def failed_streak(connection: Connection, model_id: int, limit: int = 1000) -> tuple[int, Any]:
    """How many of the newest finished cycles failed in a row, and when the first of them
    started (None when the newest finished cycle did not fail)."""
    rows = connection.execute(
        select(cycle.c.status, cycle.c.started_at)
        .where(cycle.c.model_id == model_id, cycle.c.status != "running")
        .order_by(cycle.c.started_at.desc(), cycle.c.id.desc())
        .limit(limit)
    )
    count, since = 0, None
    for status, started_at in rows:
        if status != "failed":
            break
        count, since = count + 1, started_at
    return count, since


def last_failures(connection: Connection, model_id: int) -> dict[str, Any] | None:
    """The newest run of failed cycles, though cycles may have run well since: how many,
    when the first and the last started, and the last one's error (None: never failed)."""
    of_model = cycle.c.model_id == model_id
    last = connection.execute(
        select(cycle.c.started_at, cycle.c.error)
        .where(of_model, cycle.c.status == "failed")
        .order_by(cycle.c.started_at.desc(), cycle.c.id.desc())
        .limit(1)
    ).first()
    if last is None:
        return None
    ended_before = connection.scalar(  # the cycle before the run that did not fail
        select(func.max(cycle.c.started_at)).where(
            of_model,
            cycle.c.status.not_in(("failed", "running")),
            cycle.c.started_at < last.started_at,
        )
    )
    run = [of_model, cycle.c.status == "failed", cycle.c.started_at <= last.started_at]
    if ended_before is not None:
        run.append(cycle.c.started_at > ended_before)
    count, first = connection.execute(
        select(func.count(), func.min(cycle.c.started_at)).where(*run)
    ).one()
    return {"cycles": count, "first_at": first, "last_at": last.started_at, "error": last.error}


def batch_counts(connection: Connection, model_id: int) -> dict[str, tuple[int, int]]:
    """status (ingested | quarantined) -> (batches, rows)."""
    rows = connection.execute(
        select(batch.c.status, func.count(), func.sum(batch.c.rows))
        .where(batch.c.model_id == model_id)
        .group_by(batch.c.status)
    )
    return {status: (int(n), int(total or 0)) for status, n, total in rows}


def quarantined(connection: Connection, model_id: int, limit: int = 5) -> list[Row]:
    """The newest quarantined batches, with their reasons, and when a fixed copy (a file
    of the same name, dropped again) was ingested, if one was."""
    fixed = batch.alias("fixed")
    fixed_at = (
        select(func.min(fixed.c.ingested_at))
        .where(
            fixed.c.model_id == model_id,
            fixed.c.file_name == batch.c.file_name,
            fixed.c.status == "ingested",
            fixed.c.id > batch.c.id,
        )
        .scalar_subquery()
    )
    rows = connection.execute(
        select(batch.c.file_name, batch.c.reason, batch.c.ingested_at, fixed_at.label("fixed_at"))
        .where(batch.c.model_id == model_id, batch.c.status == "quarantined")
        .order_by(batch.c.id.desc())
        .limit(limit)
    ).mappings()
    return [dict(row) for row in rows]


def latest_estimates(connection: Connection, model_id: int, *, complete: bool = False) -> list[Row]:
    """The newest (complete) chunk's estimates, one per metric, by its newest version."""
    newest = select(func.max(chunk_estimate.c.chunk_start)).where(
        chunk_estimate.c.model_id == model_id
    )
    if complete:
        newest = newest.where(chunk_estimate.c.provisional.is_(False))
    rows = (
        connection.execute(
            select(chunk_estimate)
            .where(
                chunk_estimate.c.model_id == model_id,
                chunk_estimate.c.chunk_start == newest.scalar_subquery(),
            )
            .order_by(chunk_estimate.c.version_id.desc(), chunk_estimate.c.metric)
        )
        .mappings()
        .all()
    )
    return [dict(row) for row in rows if row["version_id"] == rows[0]["version_id"]]


def findings_in_chunk(
    connection: Connection, model_id: int, chunk_start: datetime
) -> list[tuple[str, str, int]]:
    """(column, kind, count) of the data-quality findings of one chunk."""
    rows = connection.execute(
        select(finding.c.column, finding.c.kind, func.sum(finding.c.count))
        .where(finding.c.model_id == model_id, finding.c.chunk_start == chunk_start)
        .group_by(finding.c.column, finding.c.kind)
        .order_by(finding.c.column, finding.c.kind)
    )
    return [(column_, kind, int(n)) for column_, kind, n in rows]


def estimate_history(connection: Connection, model_id: int, metric: str | None = None) -> list[Row]:
    query = select(chunk_estimate).where(chunk_estimate.c.model_id == model_id)
    if metric is not None:
        query = query.where(chunk_estimate.c.metric == metric)
    query = query.order_by(
        chunk_estimate.c.chunk_start, chunk_estimate.c.version_id, chunk_estimate.c.metric
    )
    return [dict(row) for row in connection.execute(query).mappings()]


def recent_trend(connection: Connection, model_id: int, chunks: int) -> list[Row]:
    """Estimated and realized values of the newest complete chunks, oldest first (for the
    sparklines of `status`); per chunk and metric the newest version's estimate."""
    starts = (
        select(chunk_estimate.c.chunk_start)
        .where(chunk_estimate.c.model_id == model_id, chunk_estimate.c.provisional.is_(False))
        .distinct()
        .order_by(chunk_estimate.c.chunk_start.desc())
        .limit(chunks)
        .subquery()
    )
    rows = connection.execute(
        select(
            chunk_estimate.c.chunk_start,
            chunk_estimate.c.metric,
            chunk_estimate.c.value,
            chunk_realized.c.value.label("realized"),
        )
        .select_from(
            chunk_estimate.outerjoin(
                chunk_realized,
                (chunk_realized.c.model_id == chunk_estimate.c.model_id)
                & (chunk_realized.c.chunk_start == chunk_estimate.c.chunk_start)
                & (chunk_realized.c.metric == chunk_estimate.c.metric),
            )
        )
        .where(
            chunk_estimate.c.model_id == model_id,
            chunk_estimate.c.chunk_start.in_(select(starts.c.chunk_start)),
        )
        .order_by(chunk_estimate.c.chunk_start, chunk_estimate.c.version_id)
    ).mappings()
    return [dict(row) for row in rows]


def open_alerts(connection: Connection, model_id: int) -> list[Row]:
    rows = connection.execute(
        select(alert)
        .where(alert.c.model_id == model_id, alert.c.closed_at.is_(None))
        .order_by(alert.c.opened_at, alert.c.id)
    ).mappings()
    return [dict(row) for row in rows]


def latest_realized(connection: Connection, model_id: int) -> list[Row]:
    """The newest judged chunk's realized metrics, with its label coverage."""
    newest = select(func.max(chunk_realized.c.chunk_start)).where(
        chunk_realized.c.model_id == model_id
    )
    query = (
        select(chunk_realized, chunk_labels.c.coverage)
        .join(
            chunk_labels,
            (chunk_labels.c.model_id == chunk_realized.c.model_id)
            & (chunk_labels.c.chunk_start == chunk_realized.c.chunk_start),
        )
        .where(
            chunk_realized.c.model_id == model_id,
            chunk_realized.c.chunk_start == newest.scalar_subquery(),
        )
        .order_by(chunk_realized.c.metric)
    )
    return [dict(row) for row in connection.execute(query).mappings()]


def newest_labeled_chunk(connection: Connection, model_id: int) -> Row | None:
    """The newest chunk with labels, judged or not (its coverage says why not)."""
    row = (
        connection.execute(
            select(chunk_labels)
            .where(chunk_labels.c.model_id == model_id, chunk_labels.c.coverage.is_not(None))
            .order_by(chunk_labels.c.chunk_start.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def label_summary(connection: Connection, model_id: int) -> Row:
    """Labels stored and held, conflicts recorded, label files quarantined."""
    stored, conflicts, quarantined = connection.execute(
        select(
            func.sum(label_file.c.stored),
            func.sum(label_file.c.conflicts),
            func.sum((label_file.c.status == "quarantined").cast(Integer)),
        ).where(label_file.c.model_id == model_id)
    ).one()
    held = connection.execute(
        select(func.count()).where(label.c.model_id == model_id, label.c.chunk_start.is_(None))
    ).scalar_one()
    return {
        "stored": int(stored or 0),
        "held": int(held),
        "conflicts": int(conflicts or 0),
        "files_quarantined": int(quarantined or 0),
    }


def realized_history(connection: Connection, model_id: int, metric: str | None = None) -> list[Row]:
    query = select(chunk_realized).where(chunk_realized.c.model_id == model_id)
    if metric is not None:
        query = query.where(chunk_realized.c.metric == metric)
    return [dict(row) for row in connection.execute(query).mappings()]


def coverage_history(connection: Connection, model_id: int) -> dict[datetime, float | None]:
    rows = connection.execute(
        select(chunk_labels.c.chunk_start, chunk_labels.c.coverage).where(
            chunk_labels.c.model_id == model_id
        )
    )
    return {start: coverage for start, coverage in rows}


def latest_drift(connection: Connection, model_id: int) -> list[Row]:
    """The newest measured chunk's feature drift (by its newest version), most drifted first."""
    newest = select(func.max(chunk_drift.c.chunk_start)).where(chunk_drift.c.model_id == model_id)
    rows = connection.execute(
        select(chunk_drift)
        .where(
            chunk_drift.c.model_id == model_id,
            chunk_drift.c.chunk_start == newest.scalar_subquery(),
        )
        .order_by(
            chunk_drift.c.version_id.desc(), chunk_drift.c.alert.desc(), chunk_drift.c.feature
        )
    ).mappings()
    found = [dict(row) for row in rows]
    return [row for row in found if row["version_id"] == found[0]["version_id"]]


def trust_of_chunk(
    connection: Connection, model_id: int, version_id: int, chunk_start: datetime
) -> Row | None:
    """One version's trust in one chunk (None: not measured)."""
    row = (
        connection.execute(
            select(chunk_trust).where(
                chunk_trust.c.model_id == model_id,
                chunk_trust.c.version_id == version_id,
                chunk_trust.c.chunk_start == chunk_start,
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def trust_history(connection: Connection, model_id: int) -> dict[tuple[datetime, int], Row]:
    """(chunk start, version id) -> that version's trust in the chunk."""
    rows = connection.execute(
        select(chunk_trust).where(chunk_trust.c.model_id == model_id)
    ).mappings()
    return {(row["chunk_start"], row["version_id"]): dict(row) for row in rows}


def latest_retrain_decision(connection: Connection, model_id: int) -> Row | None:
    return _newest(connection, retrain_decision, model_id)


def _newest(connection: Connection, table: Any, model_id: int) -> Row | None:
    """The model's newest row of a table (the highest id)."""
    row = (
        connection.execute(
            select(table).where(table.c.model_id == model_id).order_by(table.c.id.desc()).limit(1)
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def retrain_runs(connection: Connection, model_id: int) -> tuple[int, Row | None]:
    """(how many retrains ran, the newest one)."""
    count = connection.execute(
        select(func.count()).where(retrain_run.c.model_id == model_id)
    ).scalar_one()
    return int(count), _newest(connection, retrain_run, model_id)


def daemon(connection: Connection) -> Row | None:
    """The daemon's lease: who runs (or ran) on this store, and its last heartbeat."""
    leader = daemon_lease.c.name == "daemon"
    row = connection.execute(select(daemon_lease).where(leader)).mappings().first()
    return dict(row) if row else None


def standbys(connection: Connection) -> list[Row]:
    """The daemons standing by to take over the lease (any heartbeat age), oldest first."""
    waiting = daemon_lease.c.name.startswith("standby:")
    query = select(daemon_lease).where(waiting).order_by(daemon_lease.c.started_at)
    return [dict(row) for row in connection.execute(query).mappings()]


def notification_backlog(connection: Connection) -> Row:
    """Undelivered webhook messages: how many, the oldest's time, the newest error."""
    pending = notification.c.delivered_at.is_(None)
    count, oldest = connection.execute(
        select(func.count(), func.min(notification.c.created_at)).where(pending)
    ).one()
    error = connection.execute(
        select(notification.c.last_error)
        .where(pending, notification.c.last_error.is_not(None))
        .order_by(notification.c.id.desc())
        .limit(1)
    ).scalar()
    return {"pending": int(count), "oldest": oldest, "last_error": error}


# -- the report: whole histories, oldest first -------------------------------------------


def drift_history(connection: Connection, model_id: int) -> list[Row]:
    rows = connection.execute(
        select(
            chunk_drift.c.chunk_start,
            chunk_drift.c.feature,
            chunk_drift.c.value,
            chunk_drift.c.threshold,
            chunk_drift.c.alert,
            chunk_drift.c.version_id,
        )
        .where(chunk_drift.c.model_id == model_id)
        .order_by(chunk_drift.c.chunk_start, chunk_drift.c.version_id)
    ).mappings()
    return [dict(row) for row in rows]


def findings_history(connection: Connection, model_id: int) -> list[Row]:
    """Data-quality findings per chunk and kind, summed over columns and batches."""
    rows = connection.execute(
        select(finding.c.chunk_start, finding.c.kind, func.sum(finding.c.count).label("count"))
        .where(finding.c.model_id == model_id)
        .group_by(finding.c.chunk_start, finding.c.kind)
        .order_by(finding.c.chunk_start)
    ).mappings()
    return [dict(row) for row in rows]


def alert_history(connection: Connection, model_id: int) -> list[Row]:
    rows = connection.execute(
        select(alert).where(alert.c.model_id == model_id).order_by(alert.c.id)
    ).mappings()
    return [dict(row) for row in rows]


def retrain_history(connection: Connection, model_id: int) -> list[Row]:
    rows = connection.execute(
        select(retrain_run).where(retrain_run.c.model_id == model_id).order_by(retrain_run.c.id)
    ).mappings()
    return [dict(row) for row in rows]


def alignment_checks(connection: Connection, model_id: int) -> list[Row]:
    """The misalignment checks of the model's versions, oldest first, with the version's
    number."""
    rows = connection.execute(
        select(alignment_check, model_version.c.version)
        .join(model_version, model_version.c.id == alignment_check.c.version_id)
        .where(alignment_check.c.model_id == model_id)
        .order_by(alignment_check.c.id)
    ).mappings()
    return [dict(row) for row in rows]

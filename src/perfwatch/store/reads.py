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
    column("alert", Boolean),
    column("provisional", Boolean),
    column("rows", Integer),
)
finding = view(
    "data_quality_finding",
    column("model_id", Integer),
    column("chunk_start", UTCDateTime),
    column("column", String),
    column("kind", String),
    column("count", Integer),
)
VIEWS = (model, model_version, batch, cycle, chunk_estimate, finding)

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


def batch_counts(connection: Connection, model_id: int) -> dict[str, tuple[int, int]]:
    """status (ingested | quarantined) -> (batches, rows)."""
    rows = connection.execute(
        select(batch.c.status, func.count(), func.sum(batch.c.rows))
        .where(batch.c.model_id == model_id)
        .group_by(batch.c.status)
    )
    return {status: (int(n), int(total or 0)) for status, n, total in rows}


def quarantined(connection: Connection, model_id: int, limit: int = 5) -> list[Row]:
    """The newest quarantined batches, with their reasons."""
    rows = connection.execute(
        select(batch.c.file_name, batch.c.reason, batch.c.ingested_at)
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

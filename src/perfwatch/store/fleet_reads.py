"""The figures of every model at once, in a fixed number of queries (the Prometheus
endpoint of a fleet: a scrape of 1,000 models must not make 20,000 round trips).

Each figure is the one `perfwatch status` reports for the model (store.reads, one model
at a time); tests/services/test_exporter.py holds the two to each other.
"""

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, func, select

from perfwatch.store.reads import (
    Row,
    alert,
    batch,
    chunk_estimate,
    chunk_labels,
    chunk_realized,
    chunk_trust,
    cycle,
    model_version,
)


def fleet_figures(connection: Connection, model_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Per model id: `estimate` (the newest complete chunk's estimates by its newest
    version, else the newest chunk's), `trust` (of that chunk, when complete), `realized`
    (the newest judged chunk's metrics, with `coverage`), `alerts` (open ones per kind),
    `cycle` (the newest), `champion` (its version number), `batches` (per status: count,
    rows)."""
    ids = list(model_ids)
    found = {i: fleet_figures_of_nothing() for i in ids}
    if not ids:
        return found
    for model_id, rows in _estimates(connection, ids).items():
        found[model_id]["estimate"] = rows
    for row in _trust(connection, found):
        found[row["model_id"]]["trust"] = row
    for model_id, rows in _realized(connection, ids).items():
        found[model_id]["realized"] = rows
    open_alerts = (
        select(alert.c.model_id, alert.c.kind, func.count())
        .where(alert.c.model_id.in_(ids), alert.c.closed_at.is_(None))
        .group_by(alert.c.model_id, alert.c.kind)
    )
    for model_id, kind, count in connection.execute(open_alerts):
        found[model_id]["alerts"][kind] = count
    for row in _newest_cycles(connection, ids):
        found[row["model_id"]]["cycle"] = row
    champions = select(model_version.c.model_id, model_version.c.version).where(
        model_version.c.model_id.in_(ids), model_version.c.status == "champion"
    )
    for model_id, number in connection.execute(champions):
        found[model_id]["champion"] = number
    counts = (
        select(batch.c.model_id, batch.c.status, func.count(), func.sum(batch.c.rows))
        .where(batch.c.model_id.in_(ids))
        .group_by(batch.c.model_id, batch.c.status)
    )
    for model_id, status, count, rows in connection.execute(counts):
        found[model_id]["batches"][status] = (int(count), int(rows or 0))
    return found


def fleet_figures_of_nothing() -> dict[str, Any]:
    """The figures of a model the store knows nothing of yet."""
    return {
        "estimate": [],
        "trust": None,
        "realized": [],
        "alerts": {},
        "cycle": None,
        "champion": None,
        "batches": {},
    }


def _estimates(connection: Connection, ids: list[int]) -> dict[int, list[Row]]:
    """reads.latest_estimates(complete=True), else (complete=False), of every model."""
    any_chunk = _newest(chunk_estimate.c.chunk_start, ids)
    complete_chunk = _newest(
        chunk_estimate.c.chunk_start, ids, chunk_estimate.c.provisional.is_(False)
    )
    chosen = (
        select(
            any_chunk.c.model_id,
            func.coalesce(complete_chunk.c.start, any_chunk.c.start).label("start"),
        )
        .outerjoin(complete_chunk, complete_chunk.c.model_id == any_chunk.c.model_id)
        .subquery()
    )
    rows = connection.execute(
        select(chunk_estimate)
        .join(
            chosen,
            (chunk_estimate.c.model_id == chosen.c.model_id)
            & (chunk_estimate.c.chunk_start == chosen.c.start),
        )
        .order_by(
            chunk_estimate.c.model_id, chunk_estimate.c.version_id.desc(), chunk_estimate.c.metric
        )
    ).mappings()
    return _newest_version(rows)


def _newest(moment: Any, ids: list[int], *where: Any) -> Any:
    """Per model of `ids`, the newest `moment` (a table's time column) as `start`, among
    the rows `where` holds."""
    of_model = moment.table.c.model_id
    return (
        select(of_model, func.max(moment).label("start"))
        .where(of_model.in_(ids), *where)
        .group_by(of_model)
        .subquery()
    )


def _newest_version(rows: Iterable[Any]) -> dict[int, list[Row]]:
    """Per model, the rows of its newest version (rows ordered by model, version desc)."""
    per_model: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        kept = per_model[row["model_id"]]
        if not kept or kept[0]["version_id"] == row["version_id"]:
            kept.append(dict(row))
    return per_model


def _trust(connection: Connection, found: dict[int, dict[str, Any]]) -> list[Row]:
    """reads.trust_of_chunk for each model's chosen chunk, when it is complete."""
    wanted = {
        (model_id, rows[0]["version_id"], rows[0]["chunk_start"])
        for model_id, item in found.items()
        if (rows := item["estimate"]) and not rows[0]["provisional"]
    }
    if not wanted:
        return []
    candidates = connection.execute(
        select(chunk_trust).where(
            chunk_trust.c.model_id.in_({model_id for model_id, _, _ in wanted}),
            chunk_trust.c.chunk_start.in_({start for _, _, start in wanted}),
        )
    ).mappings()
    return [
        dict(row)
        for row in candidates
        if (row["model_id"], row["version_id"], row["chunk_start"]) in wanted
    ]


def _realized(connection: Connection, ids: list[int]) -> dict[int, list[Row]]:
    """reads.latest_realized of every model."""
    newest = _newest(chunk_realized.c.chunk_start, ids)
    rows = connection.execute(
        select(chunk_realized, chunk_labels.c.coverage)
        .join(
            newest,
            (chunk_realized.c.model_id == newest.c.model_id)
            & (chunk_realized.c.chunk_start == newest.c.start),
        )
        .join(
            chunk_labels,
            (chunk_labels.c.model_id == chunk_realized.c.model_id)
            & (chunk_labels.c.chunk_start == chunk_realized.c.chunk_start),
        )
        .order_by(chunk_realized.c.model_id, chunk_realized.c.metric)
    ).mappings()
    per_model: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        per_model[row["model_id"]].append(dict(row))
    return per_model


def _newest_cycles(connection: Connection, ids: list[int]) -> list[Row]:
    """reads.last_cycle of every model (by start, then id)."""
    newest = _newest(cycle.c.started_at, ids)
    rows = connection.execute(
        select(cycle)
        .join(
            newest,
            (cycle.c.model_id == newest.c.model_id) & (cycle.c.started_at == newest.c.start),
        )
        .order_by(cycle.c.id)
    ).mappings()
    return list({row["model_id"]: dict(row) for row in rows}.values())  # the newest id wins

"""What `status` and `history` report, as plain JSON-ready dicts (the CLI renders them).

Only the store is read here: no pandas, no nannyml, so the commands answer fast.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.tables import ChunkEstimate, Model


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def model_status(engine: Engine, names: list[str]) -> list[dict[str, Any]]:
    """One status object per model (DESIGN.md's `status --json` contract)."""
    with transaction(engine) as session:
        known = {m.name: m for m in queries.list_models(session=session)}
        return [_one(session, name, known.get(name)) for name in names]


def _one(session: Any, name: str, model: Model | None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": name,
        "champion_version": None,
        "last_cycle": None,
        "batches_ingested": 0,
        "batches_quarantined": 0,
        "rows_ingested": 0,
        "latest_estimate": None,
        "latest_complete_estimate": None,
        "latest_realized": None,
        "alerts": [],
        "data_quality": [],
        "quarantined": [],
        "retrain": {"state": "not_available", "count": 0, "last": None},
    }
    if model is None or model.id is None:
        return status
    champion = queries.champion(session=session, model_id=model.id)
    status["champion_version"] = champion.version if champion else None
    cycle = queries.last_cycle(session=session, model_id=model.id)
    if cycle is not None:
        status["last_cycle"] = {
            "started_at": iso(cycle.started_at),
            "finished_at": iso(cycle.finished_at),
            "status": cycle.status,
            "error": cycle.error,
            "rows": cycle.rows,
            "batches": cycle.batches,
            "quarantined": cycle.quarantined,
        }
    counts = queries.batch_counts(session=session, model_id=model.id)
    status["batches_ingested"], status["rows_ingested"] = counts.get("ingested", (0, 0))
    status["batches_quarantined"] = counts.get("quarantined", (0, 0))[0]
    versions = queries.version_numbers(session=session, model_id=model.id)
    latest = queries.latest_estimates(session=session, model_id=model.id)
    complete = queries.latest_estimates(session=session, model_id=model.id, complete=True)
    status["latest_estimate"] = _estimate(latest, versions)
    status["latest_complete_estimate"] = _estimate(complete, versions)
    status["alerts"] = [
        {
            "kind": "performance",
            "metric": e.metric,
            "chunk_start": iso(e.chunk_start),
            "message": f"estimated {e.metric} {e.value:.3f} is under its threshold"
            f" {e.threshold:.3f}",
        }
        for e in queries.open_alerts(session=session, model_id=model.id)
    ]
    if latest:
        status["data_quality"] = [
            {
                "chunk_start": iso(latest[0].chunk_start),
                "column": column,
                "kind": kind,
                "count": count,
            }
            for column, kind, count in queries.findings_in_chunk(
                session=session, model_id=model.id, chunk_start=latest[0].chunk_start
            )
        ]
    status["quarantined"] = [
        {"file": b.file_name, "reason": b.reason, "at": iso(b.ingested_at)}
        for b in queries.quarantined_batches(session=session, model_id=model.id)
    ]
    return status


def _estimate(rows: Sequence[ChunkEstimate], versions: dict[int, int]) -> dict[str, Any] | None:
    if not rows:
        return None
    first = rows[0]
    return {
        "chunk_start": iso(first.chunk_start),
        "chunk_end": iso(first.chunk_end),
        "provisional": first.provisional,
        "rows": first.rows,
        "model_version": versions.get(first.version_id),
        "metrics": {
            r.metric: {
                "value": r.value,
                "lower": r.lower,
                "upper": r.upper,
                "threshold": r.threshold,
                "alert": r.alert,
            }
            for r in rows
        },
    }


def history(engine: Engine, name: str, metric: str | None = None) -> list[dict[str, Any]]:
    """One row per chunk x metric x version (DESIGN.md's `history --json` contract)."""
    with transaction(engine) as session:
        model = queries.find_model(session=session, name=name)
        if model is None or model.id is None:
            return []
        versions = queries.version_numbers(session=session, model_id=model.id)
        rows = queries.estimate_history(session=session, model_id=model.id, metric=metric)
        return [
            {
                "chunk_start": iso(r.chunk_start),
                "chunk_end": iso(r.chunk_end),
                "model_version": versions.get(r.version_id),
                "metric": r.metric,
                "estimated": r.value,
                "lower": r.lower,
                "upper": r.upper,
                "threshold": r.threshold,
                "alert": r.alert,
                "provisional": r.provisional,
                "rows": r.rows,
                "realized": None,
                "label_coverage": None,
                "concept_drift": None,
            }
            for r in rows
        ]

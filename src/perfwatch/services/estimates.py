"""Estimating the chunks a cycle changed: CBPE on the rows of every chunk that received
rows or just became complete (its work follows the new data, never the length of history),
judged against the threshold in force (the version's own, never under the bar).
"""

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from perfwatch.config import ModelSettings, verifying
from perfwatch.domain.chunks import CHUNK_COLUMN, chunk_end, chunk_ns, closing_time, moment
from perfwatch.domain.thresholds import in_force, is_alert
from perfwatch.errors import EstimationError
from perfwatch.services.registry import Champion, cbpe_columns
from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.segments import read_stored
from perfwatch.store.tables import ChunkEstimate, utcnow

if TYPE_CHECKING:
    import pandas as pd

    from perfwatch.ml.cbpe import Estimate


@dataclass
class EstimatePlan:
    """CBPE's estimates of the chunks that changed, computed but not stored yet."""

    records: list[dict[str, Any]] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # NaN metrics on complete chunks
    chunks: int = 0


def plan_estimates(
    engine: Engine,
    model: ModelSettings,
    champion: Champion,
    fresh: "pd.DataFrame | None",
    now: datetime | None = None,
) -> EstimatePlan:
    """Estimate the chunks whose rows changed or that became complete since their estimate.

    `fresh` holds this cycle's rows, not recorded yet: they count as stored. The work
    follows the new data, never the length of history. Chunks are found stale by
    comparing row counts, so a cycle that died midway is caught up by the next one.
    """
    from perfwatch.ml import chunk_metrics

    version = champion.version
    assert version.id is not None
    with transaction(engine) as session:
        stored = queries.chunk_row_counts(session=session, model_id=version.model_id)
        estimated = queries.estimated_chunks(session=session, version_id=version.id)
        newest = queries.watermark(session=session, model_id=version.model_id)
    if fresh is not None and len(fresh):
        newest = _add_fresh(stored, newest, fresh, model)
    newest = closing_time(newest, now or utcnow(), model.closes_after)
    stale = [
        start
        for start, (end, rows) in stored.items()
        if start not in estimated
        or estimated[start][0] != rows
        or (estimated[start][1] and model.chunking.complete(end, rows, newest))
    ]
    if not stale:
        return EstimatePlan()
    rows = _chunk_rows(engine, model, version.model_id, stale, fresh, champion.data_dir)
    plan = EstimatePlan()
    estimates = _estimate(model, champion, rows)
    if verifying():  # CBPE's arithmetic, the weighted estimator's too, is nannyml's
        from perfwatch.ml import cbpe

        columns = cbpe_columns(model)
        oracle = cbpe.estimate(champion.estimator, rows, columns=columns, metrics=model.metrics)
        ours = chunk_metrics.estimate(
            champion.fitted, rows, columns=columns, metrics=model.metrics, chunking=model.chunking
        )
        chunk_metrics.check_equal(ours, oracle, ("value", "sampling_error", "lower", "upper"))
    for estimate in estimates:
        end, rows = stored[estimate.chunk_start]
        provisional = not model.chunking.complete(end, rows, newest)
        if estimate.value != estimate.value:  # NaN
            if not provisional:
                plan.broken.append(f"{estimate.metric} on {estimate.chunk_start:%Y-%m-%d %H:%M}")
            continue
        plan.records.append(_estimate_row(model, champion, estimate, provisional))
    plan.chunks = len({e.chunk_start for e in estimates})
    return plan


def _estimate(model: ModelSettings, champion: Champion, rows: "pd.DataFrame") -> list["Estimate"]:
    """The configured estimator's figures: CBPE's, or CBPE's arithmetic on a calibration
    weighted towards each chunk's inputs (ml.weighted)."""
    from perfwatch.ml import chunk_metrics, weighted

    columns = cbpe_columns(model)
    if model.estimator == "weighted":
        return weighted.estimate(
            champion.fitted,
            champion.contract.only(model.features),
            champion.reference_rows,
            rows,
            columns=columns,
            metrics=model.metrics,
            chunking=model.chunking,
        )
    return chunk_metrics.estimate(
        champion.fitted, rows, columns=columns, metrics=model.metrics, chunking=model.chunking
    )


def store_estimates(engine: Engine, plan: EstimatePlan) -> int:
    """Store the planned estimates; NaN on a complete chunk is an error, after the rest."""
    with transaction(engine) as session:
        queries.upsert(
            session=session,
            table=ChunkEstimate,
            rows=plan.records,
            keys=("model_id", "version_id", "chunk_start", "metric"),
        )
    if plan.broken:
        raise EstimationError(
            f"CBPE gives NaN for {len(plan.broken)} complete chunk metric(s): "
            + ", ".join(plan.broken[:5]),
            hint="such chunks usually hold too few rows or a single predicted class; a longer"
            " chunk period helps",
        )
    return plan.chunks


def _add_fresh(
    stored: dict[datetime, tuple[datetime, int]],
    newest: datetime | None,
    fresh: "pd.DataFrame",
    model: ModelSettings,
) -> datetime:
    """Count this cycle's rows into the stored chunks; return the new data-time watermark."""
    grouped = fresh.groupby(CHUNK_COLUMN)[model.timestamp_column]
    for (ns, count), last in zip(grouped.size().items(), grouped.max(), strict=True):
        start = moment(int(ns))
        fresh_end = chunk_end(model.chunking, start, last.value)
        end, rows = stored.get(start, (fresh_end, 0))
        stored[start] = (max(end, fresh_end), rows + int(count))
    latest = fresh[model.timestamp_column].max().floor("us").to_pydatetime()
    return latest if newest is None else max(newest, latest)


def _chunk_rows(
    engine: Engine,
    model: ModelSettings,
    model_id: int,
    stale: list[datetime],
    fresh: "pd.DataFrame | None",
    data_dir: Path,
) -> "pd.DataFrame":
    """All rows of the stale chunks: recorded ones from disk, this cycle's from memory."""
    import pandas as pd

    columns = [model.score_column, model.prediction_column, model.timestamp_column]
    if model.estimator == "weighted":  # it weighs the reference towards the chunk's inputs
        columns += model.features
    chunks = {chunk_ns(start) for start in stale}
    with transaction(engine) as session:
        recorded = queries.batches_in_chunks(session=session, model_id=model_id, chunk_starts=stale)
    parts = [read_stored(recorded, columns, chunks, data_dir)] if recorded else []
    if fresh is not None:
        parts.append(fresh.loc[fresh[CHUNK_COLUMN].isin(chunks), [*columns, CHUNK_COLUMN]])
    return pd.concat(parts, ignore_index=True)


def _estimate_row(
    model: ModelSettings, champion: Champion, estimate: "Estimate", provisional: bool
) -> dict[str, Any]:
    bar = champion.bars.get(estimate.metric)
    threshold = in_force(champion.threshold(model, estimate.metric), bar)
    return {
        "model_id": champion.version.model_id,
        "version_id": champion.version.id,
        "chunk_start": estimate.chunk_start,
        "chunk_end": estimate.chunk_end,
        "metric": estimate.metric,
        "value": estimate.value,
        "lower": estimate.lower,
        "upper": estimate.upper,
        "sampling_error": estimate.sampling_error,
        "threshold": threshold,
        "bar": bar,
        "alert": is_alert(estimate.value, threshold, provisional=provisional),
        "provisional": provisional,
        "rows": estimate.rows,
        "estimated_at": utcnow(),
    }

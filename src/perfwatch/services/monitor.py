"""One monitoring cycle of one model: ingest the inbox, then estimate the chunks that changed.

Each step is its own transaction. A file moves out of the inbox only after its rows or
its rejection reason are committed, so a process killed at any instant loses nothing
and, since batches are keyed by content hash, duplicates nothing.
"""

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from perfwatch.config import ModelSettings, Settings
from perfwatch.domain.chunks import CHUNK_COLUMN, is_complete
from perfwatch.domain.thresholds import ReferencePerformance, is_alert, threshold_for
from perfwatch.errors import EstimationError, PerfwatchError
from perfwatch.services.ingestion import FileOutcome, Intake, ingest_inbox, read_stored
from perfwatch.services.registry import (
    Champion,
    cbpe_columns,
    ensure_initial_version,
    load_champion,
)
from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.tables import ChunkEstimate, Cycle, utcnow

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass
class CycleReport:
    model: str
    status: str = "running"
    error: str | None = None
    files: list[FileOutcome] = field(default_factory=list)
    chunks_estimated: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files if f.status == "ingested")


def run_cycle(engine: Engine, settings: Settings, model: ModelSettings) -> CycleReport:
    """Ingest every waiting batch of one model and estimate the chunks that changed."""
    report = CycleReport(model=model.name)
    with transaction(engine) as session:
        record = queries.get_or_create_model(session=session, name=model.name)
        assert record.id is not None
        queries.interrupt_running_cycles(session=session, model_id=record.id)
        cycle = Cycle(model_id=record.id)
        session.add(cycle)
    try:
        with _timed(report, "load"):
            ensure_initial_version(engine, settings, model)
            champion = load_champion(engine, model)
        with _timed(report, "ingest"):
            intake = ingest_inbox(engine, settings, model, champion)
            report.files = intake.files
        with _timed(report, "estimate"):
            report.chunks_estimated = estimate_changed_chunks(engine, model, champion, intake)
        report.status = "ok"
    except PerfwatchError as exc:
        report.status, report.error = "failed", exc.message
        log.error("%s: cycle failed: %s", model.name, exc.message)
    except Exception as exc:  # a bug or an unforeseen failure: keep it, with its type
        report.status, report.error = "failed", f"{type(exc).__name__}: {exc}"
        log.exception("%s: cycle failed", model.name)
    _finish(engine, cycle, report)
    return report


@contextmanager
def _timed(report: CycleReport, step: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        report.timings[step] = round(time.perf_counter() - started, 4)


def _finish(engine: Engine, cycle: Cycle, report: CycleReport) -> None:
    with transaction(engine) as session:
        cycle.status, cycle.error, cycle.finished_at = report.status, report.error, utcnow()
        cycle.batches = sum(1 for f in report.files if f.status == "ingested")
        cycle.quarantined = sum(1 for f in report.files if f.status == "quarantined")
        cycle.rows, cycle.chunks_estimated = report.rows, report.chunks_estimated
        cycle.timings = json.dumps(report.timings)
        session.add(cycle)


# -- estimation ---------------------------------------------------------------------------


def estimate_changed_chunks(
    engine: Engine, model: ModelSettings, champion: Champion, intake: Intake | None = None
) -> int:
    """Estimate the chunks whose rows changed or that became complete since their estimate.

    The work follows the new data, never the length of history. Rows that already got an
    estimate are found by comparing stored row counts, so a cycle that died midway is
    caught up by the next one.
    """
    from perfwatch.ml import cbpe

    version = champion.version
    assert version.id is not None
    with transaction(engine) as session:
        stored = queries.chunk_row_counts(session=session, model_id=version.model_id)
        estimated = queries.estimated_chunks(session=session, version_id=version.id)
        newest = queries.watermark(session=session, model_id=version.model_id)
    stale = [
        start
        for start, (end, rows) in stored.items()
        if start not in estimated
        or estimated[start][0] != rows
        or (estimated[start][1] and is_complete(end, newest))
    ]
    if not stale:
        return 0
    rows = _chunk_rows(engine, model, version.model_id, stale, intake)
    estimates = cbpe.estimate(
        champion.estimator, rows, columns=cbpe_columns(model), metrics=model.metrics
    )
    records, broken = [], []
    for estimate in estimates:
        provisional = not is_complete(estimate.chunk_end, newest)
        if estimate.value != estimate.value:  # NaN
            if not provisional:
                broken.append(f"{estimate.metric} on {estimate.chunk_start:%Y-%m-%d %H:%M}")
            continue
        records.append(_record(model, champion, estimate, provisional))
    with transaction(engine) as session:
        queries.upsert(
            session=session,
            table=ChunkEstimate,
            rows=records,
            keys=("model_id", "version_id", "chunk_start", "metric"),
        )
    if broken:
        raise EstimationError(
            f"nannyml returned NaN for {len(broken)} complete chunk metric(s): "
            + ", ".join(broken[:5]),
            hint="such chunks usually hold too few rows or a single predicted class; a longer"
            " chunk period helps",
        )
    return len({e.chunk_start for e in estimates})


def _chunk_rows(
    engine: Engine,
    model: ModelSettings,
    model_id: int,
    stale: list[datetime],
    intake: Intake | None,
) -> "pd.DataFrame":
    """All stored rows of the stale chunks; this cycle's own rows come from memory."""
    import pandas as pd

    columns = [model.score_column, model.prediction_column, model.timestamp_column]
    chunks = {int(start.timestamp()) * 1_000_000_000 for start in stale}
    fresh = intake.rows if intake is not None and intake.rows is not None else None
    skip = intake.batch_ids if intake is not None else set()
    with transaction(engine) as session:
        batches = queries.batches_in_chunks(session=session, model_id=model_id, chunk_starts=stale)
    older = [b for b in batches if b.id not in skip]
    parts = [read_stored(older, columns, chunks)] if older else []
    if fresh is not None:
        parts.append(fresh.loc[fresh[CHUNK_COLUMN].isin(chunks), [*columns, CHUNK_COLUMN]])
    return pd.concat(parts, ignore_index=True)


def _record(
    model: ModelSettings, champion: Champion, estimate: Any, provisional: bool
) -> dict[str, Any]:
    reference = champion.reference[estimate.metric]
    threshold = threshold_for(
        model.threshold_rule(estimate.metric),
        ReferencePerformance(reference.value, reference.band_lower),
    )
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
        "alert": is_alert(estimate.value, threshold, provisional=provisional),
        "provisional": provisional,
        "rows": estimate.rows,
        "estimated_at": utcnow(),
    }


def run_all(
    engine: Engine, settings: Settings, names: list[str] | None = None
) -> list[CycleReport]:
    """One cycle for every configured model (or those named); one failing does not stop others."""
    models = [settings.model(n) for n in names] if names else settings.models
    return [run_cycle(engine, settings, model) for model in models]

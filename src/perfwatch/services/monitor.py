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
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from perfwatch.config import ModelSettings, Settings
from perfwatch.domain.chunks import is_complete
from perfwatch.domain.thresholds import ReferencePerformance, is_alert, threshold_for
from perfwatch.errors import BatchRejected, EstimationError, PerfwatchError
from perfwatch.files import move_into, sha256_file
from perfwatch.ingest.batch import CHUNK_COLUMN, SUFFIXES
from perfwatch.services.registry import (
    Champion,
    cbpe_columns,
    ensure_initial_version,
    load_champion,
)
from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.tables import Batch, ChunkEstimate, Cycle, DataQualityFinding, utcnow

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass
class FileOutcome:
    file_name: str
    status: str  # ingested | quarantined | duplicate
    rows: int = 0
    reason: str | None = None


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


def inbox_files(inbox: Path) -> list[Path]:
    """Batch files waiting in the inbox, oldest name first; hidden (being written) ones skipped."""
    if not inbox.is_dir():
        return []
    return sorted(
        p
        for p in inbox.iterdir()
        if p.is_file() and p.suffix in SUFFIXES and not p.name.startswith(".")
    )


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
            for path in inbox_files(model.inbox):
                report.files.append(ingest_file(engine, settings, model, champion, path))
        with _timed(report, "estimate"):
            report.chunks_estimated = estimate_changed_chunks(engine, settings, model, champion)
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


# -- ingestion ----------------------------------------------------------------------------


def ingest_file(
    engine: Engine, settings: Settings, model: ModelSettings, champion: Champion, path: Path
) -> FileOutcome:
    """Store one batch file's rows, or quarantine it with a reason; then move it."""
    content_hash = sha256_file(path)
    model_id = champion.version.model_id
    with transaction(engine) as session:
        known = queries.find_batch(session=session, model_id=model_id, content_hash=content_hash)
    if known is not None:  # dropped twice, or committed just before a crash
        _move(path, model, quarantined=known.status == "quarantined", reason=known.reason)
        log.info("%s: %s was already ingested as batch %s", model.name, path.name, known.id)
        return FileOutcome(path.name, "duplicate")
    try:
        rows = _ingest_rows(engine, settings, model, champion, path, content_hash)
    except BatchRejected as rejection:
        reason = rejection.message + (f" (hint: {rejection.hint})" if rejection.hint else "")
        with transaction(engine) as session:
            session.add(
                Batch(
                    model_id=model_id,
                    file_name=path.name,
                    content_hash=content_hash,
                    status="quarantined",
                    reason=reason,
                )
            )
        _move(path, model, quarantined=True, reason=reason)
        log.warning("%s: quarantined %s: %s", model.name, path.name, reason)
        return FileOutcome(path.name, "quarantined", reason=reason)
    _move(path, model, quarantined=False)
    log.info("%s: ingested %s (%d rows)", model.name, path.name, rows)
    return FileOutcome(path.name, "ingested", rows=rows)


def _ingest_rows(
    engine: Engine,
    settings: Settings,
    model: ModelSettings,
    champion: Champion,
    path: Path,
    content_hash: str,
) -> int:
    from perfwatch.ingest.batch import prepare, read_table
    from perfwatch.ingest.contract import soft_findings
    from perfwatch.ml.model import fill_scores

    prepared = prepare(
        read_table(path), model=model, contract=champion.contract, period=model.chunk_period
    )
    fill_scores(
        champion.model,
        prepared.rows,
        features=model.features,
        score_column=model.score_column,
        prediction_column=model.prediction_column,
        missing=prepared.needs_scores,
    )
    model_id = champion.version.model_id
    rows, repeated = _drop_stored_ids(engine, settings, model, model_id, prepared.rows)
    duplicates = _duplicate_counts(prepared.duplicates, repeated)
    findings = soft_findings(rows, champion.contract, CHUNK_COLUMN)
    stored = batch_path(settings, model.name, content_hash)
    _write_rows(rows, stored, model.categorical)
    timestamps = rows[model.timestamp_column].dt.floor("us")
    with transaction(engine) as session:
        batch = Batch(
            model_id=model_id,
            file_name=path.name,
            content_hash=content_hash,
            status="ingested",
            rows=len(rows),
            rows_dropped=int(sum(duplicates.values())),
            data_start=timestamps.min().to_pydatetime() if len(rows) else None,
            data_end=timestamps.max().to_pydatetime() if len(rows) else None,
            stored_path=str(stored),
        )
        session.add(batch)
        session.flush()
        assert batch.id is not None
        period = model.chunk_period
        queries.add_batch_chunks(
            session=session,
            batch=batch,
            chunks=[
                (_moment(ns), period.end_of(_moment(ns)), int(n))
                for ns, n in rows.groupby(CHUNK_COLUMN).size().items()
            ],
        )
        queries.add_findings(
            session=session,
            findings=[
                DataQualityFinding(
                    model_id=model_id,
                    batch_id=batch.id,
                    chunk_start=_moment(f.chunk_ns),
                    column=f.column,
                    kind=f.kind,
                    count=f.count,
                    detail=f.detail,
                )
                for f in findings
            ]
            + [
                DataQualityFinding(
                    model_id=model_id,
                    batch_id=batch.id,
                    chunk_start=_moment(ns),
                    column=model.id_column,
                    kind="duplicate_id",
                    count=n,
                    detail="rows with an id already seen were dropped",
                )
                for ns, n in duplicates.items()
            ],
        )
    return len(rows)


def _drop_stored_ids(
    engine: Engine, settings: Settings, model: ModelSettings, model_id: int, rows: "pd.DataFrame"
) -> tuple["pd.DataFrame", "pd.Series"]:
    """Drop rows whose id is already stored in the same chunk (a producer's retry)."""
    import pandas as pd

    chunk_starts = [_moment(ns) for ns in rows[CHUNK_COLUMN].unique()]
    with transaction(engine) as session:
        earlier = queries.batches_in_chunks(
            session=session, model_id=model_id, chunk_starts=chunk_starts
        )
    if not earlier:
        return rows, pd.Series([], dtype="int64")
    stored = read_stored(
        earlier, [model.id_column, CHUNK_COLUMN], {int(ns) for ns in rows[CHUNK_COLUMN].unique()}
    )
    seen = rows[model.id_column].isin(set(stored[model.id_column]))
    return rows.loc[~seen].reset_index(drop=True), rows.loc[seen, CHUNK_COLUMN]


def _duplicate_counts(*dropped: "pd.Series") -> dict[int, int]:
    counts: dict[int, int] = {}
    for series in dropped:
        for ns, n in series.value_counts().items():
            counts[int(ns)] = counts.get(int(ns), 0) + int(n)
    return counts


def batch_path(settings: Settings, model: str, content_hash: str) -> Path:
    return settings.data_dir / "batches" / model / f"{content_hash[:32]}.parquet"


def _write_rows(rows: "pd.DataFrame", target: Path, categorical: list[str]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    # dictionary encoding only pays for categories: on ids and floats it doubles write time
    rows.to_parquet(temporary, index=False, use_dictionary=categorical)
    temporary.replace(target)


def read_stored(batches: list[Batch] | Any, columns: list[str], chunks: set[int]) -> "pd.DataFrame":
    """The stored rows of these batches that fall into these chunks (ns starts)."""
    import pandas as pd
    import pyarrow.parquet as pq

    filters = [(CHUNK_COLUMN, "in", sorted(chunks))]
    tables = [pq.read_table(b.stored_path, columns=columns, filters=filters) for b in batches]
    return pd.concat([t.to_pandas() for t in tables], ignore_index=True)


def _move(
    path: Path, model: ModelSettings, *, quarantined: bool, reason: str | None = None
) -> None:
    if not quarantined:
        move_into(path, model.inbox / "processed")
        return
    moved = move_into(path, model.inbox / "quarantine")
    moved.with_name(moved.name + ".reason.txt").write_text((reason or "") + "\n", "utf-8")


def _moment(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC)


# -- estimation ---------------------------------------------------------------------------


def estimate_changed_chunks(
    engine: Engine, settings: Settings, model: ModelSettings, champion: Champion
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
    with transaction(engine) as session:
        batches = queries.batches_in_chunks(
            session=session, model_id=version.model_id, chunk_starts=stale
        )
    columns = [model.score_column, model.prediction_column, model.timestamp_column, CHUNK_COLUMN]
    rows = read_stored(batches, columns, {int(s.timestamp()) * 1_000_000_000 for s in stale})
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

"""One monitoring cycle of one model: ingest the inbox, estimate the chunks that changed,
ingest the delayed labels, then judge the chunks whose labels changed.

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
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from perfwatch import logs, stopping
from perfwatch.config import ModelSettings, Settings
from perfwatch.domain.chunks import CHUNK_COLUMN, moment
from perfwatch.domain.durations import format_duration
from perfwatch.domain.retrain import Decision
from perfwatch.errors import ConfigError, PerfwatchError
from perfwatch.ingest import inbox
from perfwatch.ml.model import Skew, SkewFailed
from perfwatch.services.adjusted import adjust_estimates
from perfwatch.services.alerts import AlertChanges, FilesSeen, update_alerts
from perfwatch.services.drift import measure_drift
from perfwatch.services.estimates import plan_estimates, store_estimates
from perfwatch.services.ingestion import (
    FileOutcome,
    read_inbox,
    record,
)
from perfwatch.services.labels import LabelFileOutcome, ingest_labels
from perfwatch.services.realized import JudgeReport, judge
from perfwatch.services.registry import (
    Champion,
    ensure_initial_version,
    load_champion,
)
from perfwatch.services.retrain_policy import evaluate
from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.tables import Cycle, utcnow

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass
class CycleReport:
    model: str
    status: str = "running"
    error: str | None = None
    files: list[FileOutcome] = field(default_factory=list)
    label_files: list[LabelFileOutcome] = field(default_factory=list)
    chunks_estimated: int = 0
    judged: JudgeReport = field(default_factory=JudgeReport)
    chunks_adjusted: int = 0  # complete chunks given a delay-adjusted estimate
    chunks_drift: int = 0  # complete chunks whose feature drift was measured
    drift_failure: str | None = None  # why feature drift could not be measured
    drift_measured: bool = False  # the drift step ran to its end
    skew: "Skew | None" = None  # of this cycle's served scores (when a check was due)
    skew_version_id: int | None = None  # the version that re-scored them
    skew_through: datetime | None = None  # the newest re-scored row's time
    retrain: Decision | None = None  # the retrain policy after this cycle
    alerts: AlertChanges = field(default_factory=lambda: AlertChanges([], []))
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files if f.status == "ingested")


def run_cycle(
    engine: Engine, settings: Settings, model: ModelSettings, *, now: datetime | None = None
) -> CycleReport:
    """One cycle of one model: every step of DESIGN.md's cycle, each its own transaction.
    `now`: the wall clock (injected by tests), read only by `complete_after`."""
    with logs.about(model.name):
        return _cycle(engine, settings, model, now or utcnow())


def _cycle(engine: Engine, settings: Settings, model: ModelSettings, now: datetime) -> CycleReport:
    report = CycleReport(model=model.name)
    with transaction(engine) as session:
        stored_model = queries.get_or_create_model(session=session, name=model.name)
        assert stored_model.id is not None
        queries.interrupt_running_cycles(session=session, model_id=stored_model.id)
        cycle = Cycle(model_id=stored_model.id)
        session.add(cycle)
    with _failures(report):
        _monitor(engine, settings, model, report, now)
    with _failures(report):  # alerts follow whatever was recorded, even after a failure
        stopping.check("alerts")
        report.alerts = update_alerts(
            engine,
            model,
            stored_model.id,
            _files_seen(report),
            report.skew,
            drift_failure=report.drift_failure,
            drift_measured=report.drift_measured,
        )
    with _failures(report):  # what the retrain policy makes of it (recorded when it changes)
        stopping.check("the retrain policy")
        report.retrain = evaluate(engine, model, stored_model.id)
    if report.status == "running":
        report.status = "ok"
    _finish(engine, cycle, report)
    return report


def _monitor(
    engine: Engine, settings: Settings, model: ModelSettings, report: CycleReport, now: datetime
) -> None:
    with _timed(report, "load"):
        check_chunking(engine, model)
        ensure_initial_version(engine, settings, model)
        champion = load_champion(engine, settings, model)
    new_chunks: set[datetime] = set()
    try:  # a chunk CBPE cannot estimate must not hold up the labels
        # no file waiting: one pass still estimates the chunks the clock has completed
        for pieces in inbox.passes(inbox.waiting(model.inbox), settings.pass_rows) or [[]]:
            new_chunks |= _ingest_pass(engine, settings, model, champion, pieces, report, now)
    finally:
        stopping.check("labels")
        with _timed(report, "labels"):
            report.label_files = ingest_labels(
                engine,
                settings,
                model,
                champion.version.model_id,
                new_chunks=frozenset(new_chunks),
            )
        stopping.check("realized metrics")
        with _timed(report, "realized"):
            report.judged = judge(engine, settings, model, champion, now)
        stopping.check("the adjusted estimates")
        with _timed(report, "adjusted"):
            report.chunks_adjusted = adjust_estimates(engine, settings, model, champion)
        stopping.check("feature drift")
        with _timed(report, "drift"), _recording_drift_failure(report):
            report.chunks_drift = measure_drift(
                engine, settings, model, champion, timings=report.timings
            )
            report.drift_measured = True


def _ingest_pass(
    engine: Engine,
    settings: Settings,
    model: ModelSettings,
    champion: Champion,
    pieces: list[inbox.Piece],
    report: CycleReport,
    now: datetime,
) -> frozenset[datetime]:
    """Ingest, estimate and record one pass of the inbox's files (or one part of a big
    file); return the chunks that received rows. Passes after one that re-scored served
    scores do not re-score."""
    stopping.check("ingestion")  # ingestion, estimation and recording go together
    with _timed(report, "ingest"):
        pending = read_inbox(
            engine, settings, model, champion, pieces, skew_checked=report.skew is not None
        )
    if pending.skew is not None:
        report.skew, report.skew_through = pending.skew, pending.skew_through
        report.skew_version_id = champion.version.id
    try:  # CBPE runs while the new rows are still being written to disk
        with _timed(report, "estimate"):
            plan = plan_estimates(engine, model, champion, pending.rows, now)
    finally:  # the rows are recorded whatever happens to their estimation
        with _timed(report, "record"):
            report.files += record(engine, model, champion, pending)
    report.chunks_estimated += store_estimates(engine, plan)
    return _chunks_of(pending.rows)


def check_chunking(engine: Engine, model: ModelSettings) -> None:
    """Refuse a chunking other than the one the model's history is cut into: every
    estimate, threshold, label count and alert of the history is per such chunk. The
    first cycle records it (a store from before it was recorded: from its chunks)."""
    wanted = model.chunking.describe()
    with transaction(engine) as session:
        record = queries.get_or_create_model(session=session, name=model.name)
        assert record.id is not None
        stored = record.chunking
        if stored is None:
            length = queries.stored_chunk_length(session=session, model_id=record.id)
            stored = format_duration(length) if length else wanted
            record.chunking = stored
            session.add(record)
    if stored == wanted:
        return
    raise ConfigError(
        f"model {model.name!r} has history in chunks of {stored}, but its config now says {wanted}",
        hint=f"set it back to chunks of {stored}; to monitor in other chunks, declare the model"
        " again under a new name (it starts from version 1 and an empty history; the old one"
        " stays readable under its name)",
    )


@contextmanager
def _recording_drift_failure(report: CycleReport) -> Iterator[None]:
    """Feature drift is a side step: its failure is kept for the alert that says what
    failed, and still fails the cycle (after ingestion and estimation are recorded)."""
    try:
        yield
    except stopping.Stopped:
        raise
    except Exception as exc:
        report.drift_failure = (
            exc.message if isinstance(exc, PerfwatchError) else f"{type(exc).__name__}: {exc}"
        )
        raise


def _chunks_of(rows: "pd.DataFrame | None") -> frozenset[datetime]:
    if rows is None:
        return frozenset()
    return frozenset(moment(int(ns)) for ns in rows[CHUNK_COLUMN].unique())


@contextmanager
def _failures(report: CycleReport) -> Iterator[None]:
    """Record a step's failure in the report (the first one is the cycle's error)."""
    try:
        yield
    except stopping.Stopped as exc:  # a warm stop: the next cycle takes up the rest
        if report.status == "running":
            report.status, report.error = "stopped", exc.message
            log.warning("%s: cycle %s", report.model, exc.message)
    except PerfwatchError as exc:
        log.error("%s: cycle failed: %s", report.model, exc.message)
        _failed(report, exc.message)
    except Exception as exc:  # a bug or an unforeseen failure: keep it, with its type
        log.exception("%s: cycle failed", report.model)
        _failed(report, f"{type(exc).__name__}: {exc}")


def _failed(report: CycleReport, error: str) -> None:
    if report.status == "running":
        report.status, report.error = "failed", error


def _files_seen(report: CycleReport) -> FilesSeen:
    return FilesSeen(
        ingested=sum(1 for f in report.files if f.status == "ingested"),
        quarantined=sum(1 for f in report.files if f.status == "quarantined"),
        labels_quarantined=sum(1 for f in report.label_files if f.status == "quarantined"),
    )


@contextmanager
def _timed(report: CycleReport, step: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        # summed: a cycle ingests its inbox in passes
        elapsed = time.perf_counter() - started
        report.timings[step] = round(report.timings.get(step, 0.0) + elapsed, 4)


def _finish(engine: Engine, cycle: Cycle, report: CycleReport) -> None:
    with transaction(engine) as session:
        cycle.status, cycle.error, cycle.finished_at = report.status, report.error, utcnow()
        cycle.batches = sum(1 for f in report.files if f.status == "ingested")
        cycle.quarantined = sum(1 for f in report.files if f.status == "quarantined")
        cycle.rows, cycle.chunks_estimated = report.rows, report.chunks_estimated
        cycle.labels = sum(f.stored for f in report.label_files)
        cycle.skew_version_id, cycle.skew_through = report.skew_version_id, report.skew_through
        if isinstance(report.skew, SkewFailed):
            cycle.skew_error = report.skew.error
        elif report.skew is not None:
            cycle.skew_checked, cycle.skew_mismatched = report.skew.checked, report.skew.mismatched
            cycle.skew_largest = report.skew.largest
        cycle.chunks_judged = report.judged.judged
        cycle.timings = json.dumps(report.timings)
        session.add(cycle)


def record_failed_cycle(
    engine: Engine, model: ModelSettings, started: datetime, error: str
) -> None:
    """A cycle that could not even start (the store was down), recorded once it is back."""
    with transaction(engine) as session:
        stored = queries.get_or_create_model(session=session, name=model.name)
        assert stored.id is not None
        session.add(
            Cycle(
                model_id=stored.id,
                started_at=started,
                finished_at=utcnow(),
                status="failed",
                error=error,
            )
        )


def run_all(
    engine: Engine, settings: Settings, names: list[str] | None = None
) -> list[CycleReport]:
    """One cycle for every configured model (or those named); one failing does not stop others."""
    models = [settings.model(n) for n in names] if names else settings.models
    return [run_cycle(engine, settings, model) for model in models]

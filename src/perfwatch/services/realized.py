"""Label coverage, realized metrics and concept-drift verdicts, chunk by chunk.

A chunk is due again when its label count, its row count or its maturity changed since
its figures were last computed (the live counts and the computed ones both sit in
`chunk_labels`, so a cycle that died midway is caught up by the next). A due chunk gets
its coverage; a covered and mature one gets realized metrics (nannyml's
PerformanceCalculator on the served scores), compared with the chunk's estimate. The
verdicts of the judged chunks around it are then recomputed, since confirmation runs
over consecutive chunks whose labels may arrive in any order.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from perfwatch.config import ModelSettings, Settings, verifying
from perfwatch.domain.chunks import CHUNK_COLUMN, chunk_ns, closing_time
from perfwatch.domain.concept import Judged, verdicts
from perfwatch.domain.durations import parse_duration
from perfwatch.services.registry import Champion, cbpe_columns
from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.segments import read_stored
from perfwatch.store.tables import ChunkLabels, ChunkRealized, utcnow

if TYPE_CHECKING:
    import pandas as pd
    from sqlmodel import Session

log = logging.getLogger(__name__)


@dataclass
class JudgeReport:
    chunks: int = 0  # chunks whose coverage was computed
    judged: int = 0  # of them, covered and mature: realized metrics computed
    drifted: int = 0  # chunk metrics with a confirmed concept-drift verdict


def judge(
    engine: Engine,
    settings: Settings,
    model: ModelSettings,
    champion: Champion,
    now: datetime | None = None,
) -> JudgeReport:
    """Coverage, realized metrics and verdicts for every chunk that is due (`now`: the
    wall clock, which closes chunks only with `complete_after`)."""
    model_id = champion.version.model_id
    with transaction(engine) as session:
        newest = queries.watermark(session=session, model_id=model_id)
        if newest is None:
            return JudgeReport()
        closed = closing_time(newest, now or utcnow(), model.closes_after)
        since = newest - parse_duration(model.label_window)
        # every chunk, however old: labels of a backfill judge old chunks too (one row a
        # chunk, and only chunks whose labels or rows changed are computed again)
        rows_now = queries.chunk_row_counts(session=session, model_id=model_id)
        labeled = queries.chunk_labels_since(session=session, model_id=model_id, since=None)
    horizon = parse_duration(model.label_horizon) if model.label_horizon else None

    def mature(chunk: ChunkLabels) -> bool:
        end, rows = rows_now.get(chunk.chunk_start, (chunk.chunk_end, 0))
        chunk.chunk_end = end  # a row chunk's end moves while it fills
        return model.chunking.mature(end, rows, closed, horizon)

    due = [
        chunk
        for chunk in labeled
        if chunk.labeled
        and (
            chunk.computed_labeled != chunk.labeled
            or chunk.computed_rows != rows_now.get(chunk.chunk_start, (None, 0))[1]
            or chunk.mature != mature(chunk)
        )
    ]
    if not due:
        return JudgeReport()
    rows = _labeled_rows(engine, settings, model, model_id, [c.chunk_start for c in due])
    report = JudgeReport(chunks=len(due))
    per_chunk = rows.groupby(CHUNK_COLUMN).size()
    covered: list[ChunkLabels] = []
    for chunk in due:
        labels = int(per_chunk.get(chunk_ns(chunk.chunk_start), 0))
        chunk.computed_rows = rows_now.get(chunk.chunk_start, (None, 0))[1]
        chunk.computed_labeled = chunk.labeled
        chunk.coverage = labels / max(chunk.computed_rows, 1)
        chunk.mature = mature(chunk)
        chunk.computed_at = utcnow()
        if chunk.mature and chunk.coverage >= model.min_label_coverage:
            covered.append(chunk)
    realized = _realized(model, champion, rows, covered)
    report.judged = len(covered)
    with transaction(engine) as session:
        for chunk in due:
            session.merge(chunk)
        queries.delete_realized(
            session=session,
            model_id=model_id,
            chunk_starts=sorted({c.chunk_start for c in due} - {c.chunk_start for c in covered}),
        )
        report.drifted = _store_verdicts(
            session, settings, model, champion, realized, rows, since, rows_now
        )
    return report


def _labeled_rows(
    engine: Engine, settings: Settings, model: ModelSettings, model_id: int, starts: list[datetime]
) -> "pd.DataFrame":
    """The labels of these chunks, each with its row's time and served figures (label
    segments carry them: no join with the stored rows is needed)."""
    from perfwatch.store.segments import TARGET, stored_labels

    labels = stored_labels(engine, settings.data_dir, model_id, starts, model.served_columns)
    labels = labels.rename(columns={"id": model.id_column, TARGET: model.target})
    return labels.astype({model.target: "float64", CHUNK_COLUMN: "int64"})


def _realized(
    model: ModelSettings, champion: Champion, rows: "pd.DataFrame", covered: list[ChunkLabels]
) -> list[Any]:
    from perfwatch.ml import chunk_metrics

    if not covered:
        return []
    starts = {chunk_ns(c.chunk_start) for c in covered}
    labeled = rows[rows[CHUNK_COLUMN].isin(starts) & rows[model.target].notna()]
    columns = cbpe_columns(model)
    figures = chunk_metrics.realize(
        champion.fitted, labeled, columns=columns, metrics=model.metrics
    )
    if verifying():
        from perfwatch.ml import realized

        calculator = realized.fit_calculator(
            champion.reference_rows, columns=columns, metrics=model.metrics, period=model.chunking
        )
        oracle = realized.calculate(calculator, labeled, columns=columns, metrics=model.metrics)
        random = frozenset({("average_precision", "sampling_error")})  # a bootstrap when fitted
        chunk_metrics.check_equal(figures, oracle, ("value", "sampling_error"), random)
    return figures


def _store_verdicts(
    session: "Session",
    settings: Settings,
    model: ModelSettings,
    champion: Champion,
    fresh: list[Any],
    rows: "pd.DataFrame",
    since: datetime,
    chunks: dict[datetime, tuple[datetime, int]],
) -> int:
    """Upsert the new realized values and recompute every metric's verdicts over the
    judged chunks of the label window; compute the concept impact of new drifts. `chunks`:
    each stored chunk's (end, rows), as the caller read them."""
    model_id = champion.version.model_id
    stored = {
        (r.chunk_start, r.metric): r
        for r in queries.realized_since(session=session, model_id=model_id, since=since)
    }
    estimates = queries.estimates_of_chunks(
        session=session, model_id=model_id, chunk_starts=sorted({r.chunk_start for r in fresh})
    )
    counts = rows.groupby(CHUNK_COLUMN)[model.target].count()
    for result in fresh:
        if result.value != result.value:  # NaN: e.g. one class among the labels
            log.info(
                "%s: no realized %s for %s (its labels hold one class only)",
                model.name,
                result.metric,
                result.chunk_start,
            )
            continue
        estimate = estimates.get((result.chunk_start, result.metric))
        row = stored.get((result.chunk_start, result.metric)) or ChunkRealized(
            model_id=model_id,
            chunk_start=result.chunk_start,
            chunk_end=chunks.get(result.chunk_start, (result.chunk_start, 0))[0],
            metric=result.metric,
            value=result.value,
            labeled_rows=0,
        )
        row.value, row.sampling_error = result.value, result.sampling_error
        row.labeled_rows = int(counts.get(chunk_ns(result.chunk_start), 0))
        row.version_id = estimate.version_id if estimate else None
        row.estimated = estimate.value if estimate else None
        row.estimated_sampling_error = estimate.sampling_error if estimate else None
        row.impact, row.computed_at = None, utcnow()
        row.bar = champion.bars.get(result.metric)
        stored[(result.chunk_start, result.metric)] = row
    drifted = 0
    for metric in model.metrics:
        chain = sorted(
            (r for (_, m), r in stored.items() if m == metric), key=lambda r: r.chunk_start
        )
        judged = [
            Judged(
                r.chunk_start, r.value, r.sampling_error, r.estimated, r.estimated_sampling_error
            )
            for r in chain
        ]
        rule = model.concept_drift
        for row, verdict in zip(
            chain,
            verdicts(judged, consecutive=rule.consecutive, sigmas=rule.sigmas),
            strict=True,
        ):
            row.out_of_band, row.concept_drift = verdict.out_of_band, verdict.concept_drift
            row.magnitude = verdict.magnitude
            drifted += int(verdict.concept_drift)
    _add_impacts(session, settings, model, champion, rows, stored)
    for row in stored.values():
        session.add(row)
    return drifted


def _add_impacts(
    session: "Session",
    settings: Settings,
    model: ModelSettings,
    champion: Champion,
    rows: "pd.DataFrame",
    stored: dict[tuple[datetime, str], ChunkRealized],
) -> None:
    """The concept change's own impact, for out-of-band chunks whose labels are at hand."""
    from perfwatch.ml.concept import concept_impact

    pending = sorted(
        {
            r.chunk_start
            for r in stored.values()
            if r.out_of_band
            and r.impact is None
            and (rows[CHUNK_COLUMN] == chunk_ns(r.chunk_start)).any()
        }
    )
    if not pending:
        return
    features = _features(session, settings, model, champion.version.model_id, pending)
    for start in pending:
        in_chunk = rows[(rows[CHUNK_COLUMN] == chunk_ns(start)) & rows[model.target].notna()]
        in_chunk = in_chunk.merge(features, on=[model.id_column, CHUNK_COLUMN])
        impacts = concept_impact(
            in_chunk,
            champion.reference_rows,
            features=model.features,
            categorical=model.categorical,
            target=model.target,
            score=model.score_column,
            prediction=model.prediction_column,
            reference_values={m: f.value for m, f in champion.reference.items()},
        )
        for (chunk_start, metric), row in stored.items():
            if chunk_start == start and metric in impacts:
                row.impact = impacts[metric]


def _features(
    session: "Session",
    settings: Settings,
    model: ModelSettings,
    model_id: int,
    starts: list[datetime],
) -> "pd.DataFrame":
    """The features of these chunks' stored rows, keyed by id and chunk."""
    batches = queries.batches_in_chunks(session=session, model_id=model_id, chunk_starts=starts)
    columns = [model.id_column, *model.features]
    return read_stored(batches, columns, {chunk_ns(s) for s in starts}, settings.data_dir)

"""The delay-adjusted estimate (ml.adjusted) of each complete chunk whose labels are still
arriving, stored beside CBPE's on the champion's estimates.

How labels arrive is learnt each cycle from the newest mature chunks' label times (label
files carry them in `label_time_column`); the chunks still within the longest delay seen
are adjusted again every cycle, since a row with no label yet says more the older it
gets. Where a chunk cannot be adjusted its adjusted figures are CBPE's, with the reason.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from perfwatch.config import ModelSettings, Settings
from perfwatch.domain.chunks import CHUNK_COLUMN, chunk_ns
from perfwatch.domain.durations import parse_duration
from perfwatch.domain.thresholds import is_alert
from perfwatch.services.registry import Champion
from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.tables import ChunkEstimate, ChunkLabels

if TYPE_CHECKING:
    import pandas as pd

    from perfwatch.ml.adjusted import Arrival

ARRIVAL_CHUNKS = 14  # the newest mature chunks label delays are learnt from
# per model: the mature chunks (and their label counts) an arrival was learnt from, and
# it; a daemon's next cycle learns again only when those change (reading their label
# files was half of the step's time)
_learnt: dict[tuple[str, int], tuple[tuple[object, ...], "Learnt"]] = {}
NO_LABEL = "no label of the chunk has arrived yet"


@dataclass(frozen=True)
class Learnt:
    arrival: "Arrival | None"
    why_not: str | None  # why there is no arrival model
    span: timedelta  # how long labels keep arriving after a row


def adjust_estimates(
    engine: Engine, settings: Settings, model: ModelSettings, champion: Champion
) -> int:
    """Adjust the champion's complete, unjudged estimates of chunks whose labels are still
    arriving; return how many chunks were adjusted (not those left with CBPE's)."""
    version = champion.version
    assert version.id is not None
    with transaction(engine) as session:
        newest = queries.watermark(session=session, model_id=version.model_id)
        if newest is None:
            return 0
        # every chunk's counts: the newest mature ones may lie before a gap in the data
        chunks = queries.chunk_labels_since(session=session, model_id=version.model_id, since=None)
    learnt = _learn_arrival(engine, settings, model, champion, chunks)
    labeled = {c.chunk_start: c.labeled for c in chunks}
    starts = _due(engine, version.id, version.model_id, newest - learnt.span)
    adjustable = [s for s in starts if learnt.arrival is not None and labeled.get(s, 0) > 0]
    figures = _adjusted(engine, settings, model, champion, learnt, adjustable, newest)
    with transaction(engine) as session:
        for estimate in queries.complete_estimates_since(
            session=session, version_id=version.id, since=newest - learnt.span
        ):
            if estimate.chunk_start not in starts:
                continue
            found = figures.get((estimate.chunk_start, estimate.metric))
            if found is None:
                _fall_back(estimate, learnt.why_not or NO_LABEL)
            else:
                value, lower, upper = found
                estimate.adjusted, estimate.adjusted_reason = value, None
                estimate.adjusted_lower, estimate.adjusted_upper = lower, upper
                estimate.adjusted_alert = is_alert(value, estimate.threshold, provisional=False)
            estimate.adjusted_labels = labeled.get(estimate.chunk_start, 0)
            session.add(estimate)
    return len(adjustable)


def _due(engine: Engine, version_id: int, model_id: int, since: datetime) -> list[datetime]:
    """The version's complete chunks ending after `since` that are not judged yet."""
    with transaction(engine) as session:
        recent = {
            e.chunk_start
            for e in queries.complete_estimates_since(
                session=session, version_id=version_id, since=since
            )
        }
        if not recent:
            return []
        judged = queries.realized_since(session=session, model_id=model_id, since=min(recent))
    return sorted(recent - {r.chunk_start for r in judged})


def _fall_back(estimate: ChunkEstimate, reason: str) -> None:
    estimate.adjusted, estimate.adjusted_reason = estimate.value, reason
    estimate.adjusted_lower, estimate.adjusted_upper = estimate.lower, estimate.upper
    estimate.adjusted_alert = estimate.alert


def _learn_arrival(
    engine: Engine,
    settings: Settings,
    model: ModelSettings,
    champion: Champion,
    chunks: list[ChunkLabels],
) -> Learnt:
    """How labels arrive, from the newest mature chunks' label times."""
    ripe = sorted(((c.chunk_start, c.labeled) for c in chunks if c.mature), reverse=True)
    used = (model.label_time_column, *ripe[:ARRIVAL_CHUNKS])
    model_id = champion.version.model_id
    key = (engine.url.render_as_string(hide_password=True), model_id)
    if key in _learnt and _learnt[key][0] == used:
        return _learnt[key][1]
    mature = [start for start, _ in ripe[:ARRIVAL_CHUNKS]]
    learnt = _learn_from(engine, settings, model, model_id, mature)
    _learnt[key] = (used, learnt)
    return learnt


def _learn_from(
    engine: Engine, settings: Settings, model: ModelSettings, model_id: int, mature: list[datetime]
) -> Learnt:
    from perfwatch.ml.adjusted import Arrival
    from perfwatch.store.segments import TARGET, label_delays

    default = parse_duration(model.label_horizon or model.label_grace)
    if not mature:
        return Learnt(None, "no mature chunk yet to learn how labels arrive", default)
    times = (model.timestamp_column, model.label_time_column)
    delays = label_delays(engine, settings.data_dir, model_id, mature, times)
    if delays.empty:
        why = f"the mature chunks' labels carry no {model.label_time_column!r}"
        return Learnt(None, why, default)
    targets = delays[TARGET].to_numpy(dtype="int64")
    if targets.min() == targets.max():
        return Learnt(None, "the mature chunks' labels hold one class only", default)
    arrival = Arrival.of(delays["delay"].to_numpy(dtype="float64"), targets)
    longest = max(float(arrival.positive[-1]), float(arrival.negative[-1]))
    return Learnt(arrival, None, timedelta(seconds=longest))


def _adjusted(
    engine: Engine,
    settings: Settings,
    model: ModelSettings,
    champion: Champion,
    learnt: Learnt,
    starts: list[datetime],
    newest: datetime,
) -> dict[tuple[datetime, str], tuple[float, float | None, float | None]]:
    """(chunk start, metric) -> (adjusted, lower, upper) for these chunks."""
    import numpy as np

    from perfwatch.ml.adjusted import adjusted_metrics
    from perfwatch.ml.chunk_metrics import Chunks

    if not starts or learnt.arrival is None:
        return {}
    rows = _rows_with_labels(engine, settings, model, champion, starts)
    chunks = Chunks.of(rows[CHUNK_COLUMN].to_numpy(dtype="int64"))
    ordered = rows.iloc[chunks.order]
    times = ordered[model.timestamp_column].to_numpy(dtype="datetime64[ns]").astype("int64")
    ages = (np.datetime64(newest.replace(tzinfo=None), "ns").astype("int64") - times) / 1e9
    figures = adjusted_metrics(
        champion.fitted,
        learnt.arrival,
        scores=ordered[model.score_column].to_numpy(dtype="float64"),
        predictions=ordered[model.prediction_column].to_numpy(dtype="float64"),
        targets=ordered["__label"].to_numpy(dtype="float64"),
        ages=np.maximum(ages, 0.0),
        chunks=chunks,
    )
    found = {}
    by_ns = {chunk_ns(s): s for s in starts}
    for index, ns in enumerate(chunks.starts_ns):
        for metric in model.metrics:
            value, _, lower, upper = (f[index] for f in figures[metric])
            found[(by_ns[int(ns)], metric)] = (float(value), _finite(lower), _finite(upper))
    return found


def _rows_with_labels(
    engine: Engine,
    settings: Settings,
    model: ModelSettings,
    champion: Champion,
    starts: list[datetime],
) -> "pd.DataFrame":
    """The chunks' stored rows (id, time, served figures), each with its label where it
    has arrived (`__label`, NaN where not)."""
    from perfwatch.store.segments import TARGET, read_stored, stored_labels

    with transaction(engine) as session:
        batches = queries.batches_in_chunks(
            session=session, model_id=champion.version.model_id, chunk_starts=starts
        )
    columns = model.served_columns
    rows = read_stored(batches, columns, {chunk_ns(s) for s in starts}, settings.data_dir)
    labels = stored_labels(
        engine, settings.data_dir, champion.version.model_id, starts, columns[:1]
    )
    labels = labels.rename(columns={"id": model.id_column, TARGET: "__label"})
    labels = labels.astype({CHUNK_COLUMN: "int64", "__label": "float64"})
    rows = rows.drop_duplicates([model.id_column, CHUNK_COLUMN])
    return rows.merge(labels, on=[model.id_column, CHUNK_COLUMN], how="left")


def _finite(value: float) -> float | None:
    import math

    return float(value) if math.isfinite(value) else None

"""Feature drift per complete chunk: measured once a chunk is complete (again if late rows
change it), confirmed over consecutive chunks (domain.drift), stored per version; the
chunk's trust figures (services.trust) from the same rows.

The figures come from what nannyml fitted at registration, applied by perfwatch
(ml.chunk_drift); `perfwatch run --verify` recomputes them with nannyml.
"""

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from perfwatch.config import ModelSettings, Settings, verifying
from perfwatch.domain.chunks import chunk_ns
from perfwatch.domain.drift import CONFIRM_OVER, RawDrift, confirmed
from perfwatch.domain.durations import parse_duration
from perfwatch.services.registry import Champion, fitted_drift
from perfwatch.services.trust import measure_trust, store_trust
from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.segments import read_stored
from perfwatch.store.tables import ChunkDrift, utcnow

if TYPE_CHECKING:
    import pandas as pd
    from sqlmodel import Session

    from perfwatch.ml.chunk_drift import FeatureDrift


def measure_drift(
    engine: Engine,
    settings: Settings,
    model: ModelSettings,
    champion: Champion,
    timings: dict[str, float] | None = None,
) -> int:
    """Measure the complete chunks not measured yet (or changed since); return how many.
    `timings` gets the seconds the trust figures took (`trust`, within the step's)."""
    from perfwatch.ml import chunk_drift

    version = champion.version
    assert version.id is not None
    with transaction(engine) as session:
        newest = queries.watermark(session=session, model_id=version.model_id)
        if newest is None:
            return 0
        since = newest - parse_duration(model.label_window)
        stored = queries.chunk_row_counts(session=session, model_id=version.model_id, since=since)
        measured = queries.drift_rows(session=session, version_id=version.id, since=since)
        due = [
            start
            for start, (end, rows) in stored.items()
            if model.chunking.complete(end, rows, newest) and measured.get(start) != rows
        ]
        batches = queries.batches_in_chunks(
            session=session, model_id=version.model_id, chunk_starts=due
        )
    if not due:
        return 0
    columns = [*model.features, model.timestamp_column]
    rows = read_stored(batches, columns, {chunk_ns(s) for s in due}, settings.data_dir)
    methods = model.drift.methods()
    reference = None
    if methods != chunk_drift.NANNYML:  # the tests compare each chunk with the reference rows
        reference = chunk_drift.Reference(champion.reference_rows, champion.contract)
    results = chunk_drift.measure(fitted_drift(engine, model, champion), rows, methods, reference)
    if verifying():
        _verify(model, champion, rows, results)
    started = time.perf_counter()
    trust = measure_trust(model, champion, rows, results)
    if timings is not None:
        timings["trust"] = round(timings.get("trust", 0.0) + time.perf_counter() - started, 4)
    counts = {s: stored[s][1] for s in due}
    with transaction(engine) as session:
        _store(session, champion, results, counts, since)
        store_trust(session, model, champion, trust, counts)
    return len(due)


def _verify(
    model: ModelSettings, champion: Champion, rows: "pd.DataFrame", results: list["FeatureDrift"]
) -> None:
    """`--verify`: the same figures from nannyml's calculators, fitted on the reference."""
    from perfwatch.ml import drift
    from perfwatch.ml.chunk_metrics import check_equal

    calculators = drift.fit(
        champion.reference_rows,
        features=model.features,
        categorical=model.categorical,
        timestamp=model.timestamp_column,
        period=model.chunking,
    )
    oracle = drift.calculate(calculators, rows, timestamp=model.timestamp_column)
    nannyml = ("jensen_shannon", "reconstruction_error")  # the others are not nannyml's
    ours = [r for r in results if r.method in nannyml]
    kept = {r.feature for r in ours}
    theirs = [o for o in oracle if o.feature in kept]
    check_equal(ours, theirs, ("value", "threshold", "alert"), named="feature")


def _store(
    session: "Session",
    champion: Champion,
    results: list["FeatureDrift"],
    rows: dict[datetime, int],
    since: datetime,
) -> None:
    """Upsert the new figures, then re-confirm each feature's chain over the window (a late
    chunk may confirm, or un-confirm, its neighbours); write what changed in one statement."""
    version = champion.version
    stored = queries.drift_since(session=session, version_id=version.id or 0, since=since)
    chain = {(d.chunk_start, d.feature): _row(d) for d in stored}
    before = {key: row["alert"] for key, row in chain.items()}
    now = utcnow()
    for result in results:
        chain[(result.chunk_start, result.feature)] = {
            "model_id": version.model_id,
            "version_id": version.id,
            "chunk_start": result.chunk_start,
            "feature": result.feature,
            "method": result.method,
            "value": result.value,
            "threshold": result.threshold,
            "p_value": result.p_value,
            "raw_alert": result.alert,
            "alert": False,
            "rows": rows[result.chunk_start],
            "computed_at": now,
        }
    measured = {(r.chunk_start, r.feature) for r in results}
    for feature in {feature for _, feature in chain}:
        ordered = sorted((k for k in chain if k[1] == feature), key=lambda k: k[0])
        raw = [
            RawDrift(chain[k]["method"], chain[k]["value"], chain[k]["raw_alert"]) for k in ordered
        ]
        for key, flag in zip(ordered, confirmed(raw, over=CONFIRM_OVER), strict=True):
            chain[key]["alert"] = flag
    changed = [row for key, row in chain.items() if key in measured or before[key] != row["alert"]]
    queries.upsert(
        session=session,
        table=ChunkDrift,
        rows=changed,
        keys=("model_id", "version_id", "chunk_start", "feature"),
    )


def _row(drift: ChunkDrift) -> dict[str, Any]:
    return drift.model_dump(exclude={"id"})

"""Ingesting a model's delayed labels: every waiting label file in one pass and one
transaction, as batches are.

A label is matched to its row's chunk through the stored rows of the recent past
(`label_window` of data time). Labels matched on arrival are written, with their chunk,
to one Parquet segment per cycle under `data_dir` (`label_chunk` maps chunks to
segments); a label whose row has not arrived yet is held in the store and matched when
the row comes. The first label of an id stays in force: a different second one is
recorded as a conflict with both values, never applied. A file moves out of the labels
inbox only after its labels (or its rejection reason) are committed.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from sqlalchemy import Engine, delete
from sqlmodel import col

from perfwatch import faults
from perfwatch.config import ModelSettings, Settings
from perfwatch.domain.chunks import CHUNK_COLUMN, ChunkPeriod, RowChunks, moment
from perfwatch.domain.durations import parse_duration
from perfwatch.files import in_data_dir
from perfwatch.ingest import inbox
from perfwatch.ingest.inbox import InboxFile
from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.segments import (
    TARGET,
    RecentRows,
    recent_rows,
    segment_path,
    stored_labels,
    write_segment,
)
from perfwatch.store.tables import Label, LabelChunk, LabelConflict, LabelFile

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sqlmodel import Session

log = logging.getLogger(__name__)
FILE_COLUMN = "__label_file"  # which file of the cycle a label came from (its position)


@dataclass
class LabelFileOutcome:
    COUNTS: ClassVar[tuple[str, ...]] = (
        "rows",
        "stored",
        "repeated",
        "conflicts",
        "held",
    )  # as recorded

    file_name: str
    status: str  # ingested | quarantined | duplicate
    rows: int = 0
    stored: int = 0
    repeated: int = 0
    conflicts: int = 0
    held: int = 0
    reason: str | None = None


@dataclass
class _Plan:
    """A cycle's accepted labels, sorted out but not recorded yet."""

    new: "pd.DataFrame"  # id, TARGET, CHUNK_COLUMN (NaN: held), FILE_COLUMN
    conflicts: list[tuple[int, str, int, int]] = field(default_factory=list)  # file, id, kept, new


def ingest_labels(
    engine: Engine,
    settings: Settings,
    model: ModelSettings,
    model_id: int,
    *,
    new_chunks: frozenset[datetime] = frozenset(),
) -> list[LabelFileOutcome]:
    """Ingest every waiting label file, then match held labels to rows that arrived.

    `new_chunks`: the chunks that received rows this cycle, where held labels may have
    found their rows (searched whatever their age).
    """
    paths = inbox.waiting(model.labels_inbox)
    if not paths:
        if not new_chunks:
            return []
        with transaction(engine) as session:  # the window's ids are read only if needed
            if not queries.held_labels(session=session, model_id=model_id):
                return []
    window = parse_duration(model.label_window)  # bounds the usual case's cost, not matching
    rows = recent_rows(
        engine, settings.data_dir, model_id, model.served_columns, window=window, also=new_chunks
    )
    outcomes = _ingest_files(engine, settings, model, model_id, paths, rows) if paths else []
    matched = match_held_labels(engine, model, model_id, rows)
    if matched:
        log.info("%s: %d held labels found their rows", model.name, matched)
    return outcomes


def _ingest_files(
    engine: Engine,
    settings: Settings,
    model: ModelSettings,
    model_id: int,
    paths: list[Path],
    rows: RecentRows,
) -> list[LabelFileOutcome]:
    from perfwatch.ingest.labels import read_labels

    files = inbox.hashed(paths)
    with transaction(engine) as session:
        recorded = queries.known_files(
            session=session,
            kind=LabelFile,
            model_id=model_id,
            content_hashes=[f.content_hash for f in files],
        )
    known = inbox.settled(recorded)
    first_of = inbox.first_of_each(files, known)
    for file in first_of.values():
        inbox.check(file, lambda path: read_labels(path, model=model), model.name)
        if file.status == "ingested":
            _refuse_labels_before_their_rows(model, file, rows)
    known.update(inbox.quarantined_as_before(first_of, recorded))
    superseded = [recorded[key] for key in first_of if key in recorded]
    accepted = [f for f in first_of.values() if f.status == "ingested"]
    plan = _plan(engine, settings, model, model_id, accepted, rows) if accepted else None
    decided = list(first_of.values())
    records = _record(engine, settings, model, model_id, decided, plan, rows, superseded)
    return [
        _settle(
            f,
            model,
            known.get(f.content_hash) or records[f.content_hash],
            first=first_of.get(f.content_hash) is f,
        )
        for f in files
    ]


def _refuse_labels_before_their_rows(
    model: ModelSettings, file: InboxFile, rows: RecentRows
) -> None:
    """Quarantine a file whose label times come before their rows' own times: an outcome
    cannot be known before the run, so its clock (or time zone) is wrong, and its times
    would misplace every label an early-warning estimate learns from. (Rows not stored
    yet, and labels without a time, are not checked.)"""
    import numpy as np
    import pyarrow.compute as pc

    table = file.content
    if model.label_time_column not in table.column_names:
        return
    positions = rows.locate(table.column(model.id_column))
    found = (positions >= 0) & np.asarray(pc.is_valid(table.column(model.label_time_column)))
    if not found.any():
        return
    ran = rows.figures(positions[found])[model.timestamp_column].reset_index(drop=True)
    known = table.column(model.label_time_column).filter(found).to_pandas()
    early = (known < ran).to_numpy()
    if not early.any():
        return
    first = int(early.nonzero()[0][0])
    row_id = table.column(model.id_column).filter(found)[first].as_py()
    file.status, file.content = "quarantined", None
    shown = "%Y-%m-%d %H:%M:%S"
    file.reason = (
        f"{int(early.sum())} labels are dated before their rows ran (first: {row_id!r}"
        f" labeled at {known[first]:{shown}}, its row at {ran[first]:{shown}} UTC) (hint:"
        f" {model.label_time_column!r} is when the outcome became known, after the run:"
        " check the producer's clock and time zone (times without a zone are taken as"
        " UTC), then drop the corrected file again)"
    )


def _plan(
    engine: Engine,
    settings: Settings,
    model: ModelSettings,
    model_id: int,
    accepted: list[InboxFile],
    rows: RecentRows,
) -> _Plan:
    """Sort the cycle's labels into new ones (matched or held), repeats and conflicts."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from perfwatch.ingest.labels import first_targets

    combined = pa.concat_tables(
        [
            f.content.rename_columns({model.id_column: "id", model.target: TARGET}).append_column(
                FILE_COLUMN, pa.array(np.full(f.content.num_rows, index, np.int32))
            )
            for index, f in enumerate(accepted)
        ],
        promote_options="permissive",
    ).combine_chunks()
    first, contradicts = first_targets(combined["id"], combined[TARGET])
    unique_ids = combined["id"].filter(pa.array(first))
    positions = rows.locate(unique_ids)
    if (positions < 0).any():  # rows older than the window (a backfill), or not stored yet
        rows = recent_rows(engine, settings.data_dir, model_id, model.served_columns, window=None)
        positions = rows.locate(unique_ids)
    found = positions >= 0
    unique = pd.concat(
        [combined.filter(pa.array(first)).to_pandas(), _figures(model, rows, positions, found)],
        axis=1,
    )
    chunks = np.unique(unique.loc[found, CHUNK_COLUMN].to_numpy(dtype="int64"))
    in_force = _labels_in_force(
        engine, settings, model, model_id, [moment(int(ns)) for ns in chunks]
    )
    if in_force.empty:  # the usual case: labels for chunks not labeled before
        plan = _Plan(new=unique)
        differs = pd.Series(False, index=unique.index)
        kept = pd.Series(np.nan, index=unique.index)
    else:
        kept = unique["id"].map(in_force)
        plan = _Plan(new=unique[kept.isna()])
        differs = kept.notna() & (kept != unique[TARGET])
    plan.conflicts = [
        (int(f), row_id, int(k), int(t))
        for f, row_id, k, t in zip(
            unique.loc[differs, FILE_COLUMN],
            unique.loc[differs, "id"],
            kept[differs],
            unique.loc[differs, TARGET],
            strict=True,
        )
    ]
    if not contradicts.any():
        return plan
    first_target = unique.set_index("id")[TARGET]
    seen = {(f, row_id) for f, row_id, _, _ in plan.conflicts}
    later = combined.filter(pa.array(contradicts)).to_pandas()
    for f, row_id, target in zip(later[FILE_COLUMN], later["id"], later[TARGET], strict=True):
        value = in_force.get(row_id, first_target[row_id])
        if (int(f), row_id) not in seen and value != target:
            plan.conflicts.append((int(f), row_id, int(value), int(target)))
            seen.add((int(f), row_id))
    return plan


def _figures(
    model: ModelSettings, rows: RecentRows, positions: "np.ndarray", found: "np.ndarray"
) -> "pd.DataFrame":
    """The chunk and served figures of located rows; NaN (held) where not found."""
    import pandas as pd

    if not found.any():
        columns = [CHUNK_COLUMN, *model.served_columns[1:]]
        return pd.DataFrame({c: [float("nan")] * len(positions) for c in columns})
    located = rows.figures(positions[found])
    located.index = found.nonzero()[0]
    return located.reindex(range(len(positions)))


def _labels_in_force(
    engine: Engine, settings: Settings, model: ModelSettings, model_id: int, chunks: list[datetime]
) -> "pd.Series":
    """row id -> target of the labels already stored in these chunks, or held."""
    import pandas as pd

    stored = stored_labels(engine, settings.data_dir, model_id, chunks, model.served_columns)
    with transaction(engine) as session:
        held = queries.held_targets(session=session, model_id=model_id)
    return pd.concat([stored.set_index("id")[TARGET], pd.Series(held, dtype="int64")]).astype(
        "int64"
    )


def _record(
    engine: Engine,
    settings: Settings,
    model: ModelSettings,
    model_id: int,
    decided: list[InboxFile],
    plan: _Plan | None,
    rows: RecentRows,
    superseded: list[LabelFile],
) -> dict[str, LabelFile]:
    """Record every new file, and the plan's labels, in one transaction; delete the
    quarantine records that these decisions on the same contents replace (see
    inbox.settled)."""
    records = {
        f.content_hash: LabelFile(
            model_id=model_id,
            file_name=f.path.name,
            content_hash=f.content_hash,
            status=f.status,
            reason=f.reason,
            rows=len(f.content) if f.content is not None else 0,
        )
        for f in decided
    }
    with transaction(engine) as session:
        if superseded:
            names = ", ".join(record.file_name for record in superseded)
            log.info("%s: label file(s) quarantined before, read again: %s", model.name, names)
            ids = [record.id for record in superseded]
            session.execute(delete(LabelFile).where(col(LabelFile.id).in_(ids)))
        session.add_all(records.values())
        session.flush()
        if plan is not None:
            accepted = [records[f.content_hash] for f in decided if f.status == "ingested"]
            _record_plan(session, settings, model, model_id, accepted, plan, rows)
        faults.reach("committing labels")
    return records


def _record_plan(
    session: "Session",
    settings: Settings,
    model: ModelSettings,
    model_id: int,
    accepted: list[LabelFile],
    plan: _Plan,
    rows: RecentRows,
) -> None:
    import pandas as pd

    ids = [int(f.id or 0) for f in accepted]
    new = plan.new
    held = new[new[CHUNK_COLUMN].isna()]
    matched = new[new[CHUNK_COLUMN].notna()].astype(
        {CHUNK_COLUMN: "int64", model.prediction_column: "int64"}
    )
    if len(matched):
        segment = _write_segment(settings, model, matched, ids, [f.content_hash for f in accepted])
        for record in accepted:
            record.stored_path = in_data_dir(settings.data_dir, segment)
    per_file_chunk = matched.groupby([FILE_COLUMN, CHUNK_COLUMN]).size()
    session.add_all(
        LabelChunk(label_file_id=ids[f], model_id=model_id, chunk_start=moment(ns), rows=int(n))
        for (f, ns), n in per_file_chunk.items()
    )
    session.add_all(
        Label(
            model_id=model_id,
            label_file_id=ids[int(f)],
            row_id=row_id,
            target=int(target),
            labeled_at=None if pd.isna(when) else when.floor("us").to_pydatetime(),
            held_since=rows.watermark,
        )
        for f, row_id, target, when in zip(
            held[FILE_COLUMN], held["id"], held[TARGET], _label_times(model, held), strict=True
        )
    )
    session.add_all(
        LabelConflict(
            model_id=model_id, label_file_id=ids[f], row_id=row_id, stored_target=k, new_target=t
        )
        for f, row_id, k, t in plan.conflicts
    )
    per_chunk = matched.groupby(CHUNK_COLUMN).size()
    queries.add_labeled(
        session=session,
        model_id=model_id,
        counts=_counts(
            session, model, model_id, ((moment(int(ns)), int(n)) for ns, n in per_chunk.items())
        ),
    )
    stored = new.groupby(FILE_COLUMN).size()
    waiting = held.groupby(FILE_COLUMN).size()
    conflicts = [sum(1 for f, *_ in plan.conflicts if f == index) for index in range(len(ids))]
    for index, record in enumerate(accepted):
        record.stored, record.held = int(stored.get(index, 0)), int(waiting.get(index, 0))
        record.conflicts = conflicts[index]
        record.repeated = record.rows - record.stored - record.conflicts
        session.add(record)


def _label_times(model: ModelSettings, labels: "pd.DataFrame") -> "pd.Series":
    """The label files' own label times (NaT where a file gave none)."""
    import pandas as pd

    if model.label_time_column in labels.columns:
        return labels[model.label_time_column]
    return pd.Series(pd.NaT, index=labels.index)


def _write_segment(
    settings: Settings,
    model: ModelSettings,
    matched: "pd.DataFrame",
    file_ids: list[int],
    content_hashes: list[str],
) -> Path:
    """The cycle's matched labels as one segment, named after its files."""
    import pyarrow as pa

    target = segment_path(settings.data_dir, "labels", model.name, content_hashes)
    columns = ["id", TARGET, CHUNK_COLUMN, *model.served_columns[1:]]
    frame = matched[columns].assign(label_file_id=[file_ids[f] for f in matched[FILE_COLUMN]])
    if model.label_time_column in matched.columns:
        frame[model.label_time_column] = matched[model.label_time_column]
    write_segment(target, pa.Table.from_pandas(frame, preserve_index=False), dictionary=[])
    return target


def _counts(
    session: "Session", model: ModelSettings, model_id: int, starts: Iterable[tuple[datetime, int]]
) -> dict[datetime, tuple[datetime, int]]:
    """chunk start -> (chunk end, labels), summed (a row chunk's end as stored now)."""
    chunking = model.chunking
    ends: dict[datetime, tuple[datetime, int]] = (
        queries.chunk_row_counts(session=session, model_id=model_id)
        if isinstance(chunking, RowChunks)
        else {}
    )
    counts: dict[datetime, tuple[datetime, int]] = {}
    for start, n in starts:
        known = ends[start][0] if start in ends else None
        end = known or (chunking.end_of(start) if isinstance(chunking, ChunkPeriod) else start)
        counts[start] = (end, counts.get(start, (end, 0))[1] + n)
    return counts


def match_held_labels(engine: Engine, model: ModelSettings, model_id: int, rows: RecentRows) -> int:
    """Give held labels whose rows have arrived their chunk and figures; return how many."""
    import pandas as pd
    import pyarrow as pa

    with transaction(engine) as session:
        held = queries.held_labels(session=session, model_id=model_id)
        if not held:
            return 0
        frame = pd.DataFrame(held, columns=["label_id", "row_id"])
        positions = rows.locate(pa.array(frame["row_id"].tolist(), pa.large_string()))
        found = positions >= 0
        figures = _figures(model, rows, positions, found)[found]
        matches = [
            {
                "label_id": int(label_id),
                "chunk_start": moment(int(ns)),
                "row_time": when.floor("us").to_pydatetime(),
                "score": float(score),
                "prediction": int(prediction),
            }
            for label_id, ns, when, score, prediction in zip(
                frame.loc[found, "label_id"],
                figures[CHUNK_COLUMN],
                figures[model.timestamp_column],
                figures[model.score_column],
                figures[model.prediction_column],
                strict=True,
            )
        ]
        queries.match_held(session=session, matches=matches)
        counts = _counts(session, model, model_id, ((m["chunk_start"], 1) for m in matches))
        queries.add_labeled(session=session, model_id=model_id, counts=counts)
        queries.date_held(session=session, model_id=model_id, watermark=rows.watermark)
    return len(matches)


def _settle(
    file: InboxFile, model: ModelSettings, decided: LabelFile, *, first: bool
) -> LabelFileOutcome:
    """Move a label file out of the inbox as its committed record decided."""
    assert model.labels_inbox is not None
    inbox.settle(file.path, model.labels_inbox, decided)
    if not first:
        log.info("%s: duplicate label file %s", model.name, file.path.name)
        return LabelFileOutcome(file.path.name, "duplicate")
    if decided.status == "quarantined":
        log.warning("%s: quarantined label file %s: %s", model.name, file.path.name, decided.reason)
    else:
        log.info("%s: ingested label file %s", model.name, file.path.name)
    counts = {name: getattr(decided, name) for name in LabelFileOutcome.COUNTS}
    return LabelFileOutcome(file.path.name, decided.status, reason=decided.reason, **counts)

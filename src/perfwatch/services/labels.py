"""Ingesting a model's delayed labels: each label file in its own transaction.

A label is matched to its row's chunk through the stored batches of the recent past
(`label_window` of data time); a label whose row has not arrived yet is held and
matched when it comes. The first label of an id stays in force: a different second
one is recorded as a conflict with both values, never applied. A file moves out of the
labels inbox only after its labels (or its rejection reason) are committed.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from perfwatch.config import ModelSettings, Settings
from perfwatch.domain.chunks import CHUNK_COLUMN, chunk_ns
from perfwatch.domain.durations import parse_duration
from perfwatch.errors import BatchRejected
from perfwatch.files import move_into, sha256_file
from perfwatch.services.ingestion import inbox_files, moment, read_stored
from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.tables import LabelConflict, LabelFile

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass
class LabelFileOutcome:
    file_name: str
    status: str  # ingested | quarantined | duplicate
    rows: int = 0
    stored: int = 0
    repeated: int = 0
    conflicts: int = 0
    held: int = 0
    reason: str | None = None


@dataclass
class RowChunks:
    """Where the recent rows are: row id -> chunk start (ns), over `label_window`."""

    chunk_of: "pd.Series"
    watermark: datetime | None


def ingest_labels(
    engine: Engine, settings: Settings, model: ModelSettings, model_id: int, *, new_rows: bool
) -> list[LabelFileOutcome]:
    """Ingest every waiting label file, then match held labels to rows that arrived.

    `new_rows`: batches were recorded this cycle, so held labels may have found their rows.
    """
    paths = inbox_files(model.labels_inbox) if model.labels_inbox is not None else []
    if not paths and not new_rows:
        return []
    rows = recent_rows(engine, settings, model, model_id)
    outcomes = [_ingest_file(engine, model, model_id, path, rows) for path in paths]
    matched = match_held_labels(engine, model, model_id, rows)
    if matched:
        log.info("%s: %d held labels found their rows", model.name, matched)
    return outcomes


def recent_rows(
    engine: Engine, settings: Settings, model: ModelSettings, model_id: int
) -> RowChunks:
    """Read the ids of the rows stored within `label_window` of the newest data."""
    import pandas as pd

    with transaction(engine) as session:
        newest = queries.watermark(session=session, model_id=model_id)
        if newest is None:
            return RowChunks(pd.Series(dtype="int64"), None)
        since = newest - parse_duration(model.label_window)
        starts = list(queries.chunk_row_counts(session=session, model_id=model_id, since=since))
        batches = queries.batches_in_chunks(session=session, model_id=model_id, chunk_starts=starts)
    chunks = {chunk_ns(start) for start in starts}
    stored = read_stored(batches, [model.id_column], chunks, settings.data_dir)
    # an id stored in two chunks (a producer's retry days later) is labeled in its first
    stored = stored.sort_values(CHUNK_COLUMN, kind="stable")
    stored = stored.drop_duplicates(model.id_column)
    return RowChunks(stored.set_index(model.id_column)[CHUNK_COLUMN], newest)


def _ingest_file(
    engine: Engine, model: ModelSettings, model_id: int, path: Path, rows: RowChunks
) -> LabelFileOutcome:
    from perfwatch.ingest.labels import read_labels

    content_hash = sha256_file(path)
    with transaction(engine) as session:
        known = queries.known_label_file(
            session=session, model_id=model_id, content_hash=content_hash
        )
    if known is not None:  # dropped twice, or recorded just before a crash
        return _settle(path, model, known, LabelFileOutcome(path.name, "duplicate"))
    try:
        labels = read_labels(path, model=model)
    except BatchRejected as rejection:
        reason = rejection.message + (f" (hint: {rejection.hint})" if rejection.hint else "")
        record = LabelFile(
            model_id=model_id,
            file_name=path.name,
            content_hash=content_hash,
            status="quarantined",
            reason=reason,
        )
        with transaction(engine) as session:
            session.add(record)
        return _settle(
            path, model, record, LabelFileOutcome(path.name, "quarantined", reason=reason)
        )
    record = _record_labels(engine, model, model_id, path, content_hash, labels, rows)
    outcome = LabelFileOutcome(
        path.name,
        "ingested",
        rows=record.rows,
        stored=record.stored,
        repeated=record.repeated,
        conflicts=record.conflicts,
        held=record.held,
    )
    return _settle(path, model, record, outcome)


def _record_labels(
    engine: Engine,
    model: ModelSettings,
    model_id: int,
    path: Path,
    content_hash: str,
    labels: "pd.DataFrame",
    rows: RowChunks,
) -> LabelFile:
    """Store a file's labels, its conflicts and the chunks' new label counts, in one go."""
    from perfwatch.ingest.labels import first_targets

    ids, targets = labels[model.id_column], labels[model.target]
    first, contradicts = first_targets(ids, targets)
    unique = labels[first]
    found_in = rows.chunk_of.reindex(unique[model.id_column]).to_numpy()
    times = (
        unique[model.label_time_column].dt.floor("us").dt.to_pydatetime()
        if model.label_time_column in unique.columns
        else [None] * len(unique)
    )
    record = LabelFile(
        model_id=model_id,
        file_name=path.name,
        content_hash=content_hash,
        status="ingested",
        rows=len(labels),
    )
    with transaction(engine) as session:
        session.add(record)
        session.flush()
        assert record.id is not None
        new = [
            {
                "model_id": model_id,
                "label_file_id": record.id,
                "row_id": row_id,
                "target": int(target),
                "labeled_at": None if when is None or when != when else when,
                "chunk_start": None if ns != ns else moment(int(ns)),
                "held_since": rows.watermark if ns != ns else None,
            }
            for row_id, target, when, ns in zip(
                unique[model.id_column], unique[model.target], times, found_in, strict=True
            )
        ]
        inserted = queries.insert_new_labels(session=session, rows=new)
        conflicts = _conflicts(session, model, model_id, labels, contradicts, new, inserted)
        for conflict in conflicts:
            conflict.label_file_id = record.id
        session.add_all(conflicts)
        stored = [label for label in new if label["row_id"] in inserted]
        counts = _per_chunk(model, (label["chunk_start"] for label in stored))
        queries.add_labeled(session=session, model_id=model_id, counts=counts)
        record.stored = len(stored)
        record.held = sum(1 for label in stored if label["chunk_start"] is None)
        record.conflicts = len(conflicts)
        record.repeated = len(labels) - record.stored - record.conflicts
        session.add(record)
    return record


def _conflicts(
    session: Any,
    model: ModelSettings,
    model_id: int,
    labels: "pd.DataFrame",
    contradicts: Any,
    new: list[dict[str, Any]],
    inserted: set[str],
) -> list[LabelConflict]:
    """Labels that contradict the one in force: later ones in the file, and file labels
    for ids labeled differently before. One conflict per id and file."""
    conflicts: dict[str, LabelConflict] = {}
    already = [label for label in new if label["row_id"] not in inserted]
    in_force = queries.stored_targets(
        session=session, model_id=model_id, row_ids=[label["row_id"] for label in already]
    )
    for label in already:
        stored = in_force.get(label["row_id"])
        if stored is not None and stored != label["target"]:
            conflicts[label["row_id"]] = _conflict(
                model_id, label["row_id"], stored, label["target"]
            )
    first_of = {label["row_id"]: label["target"] for label in new}
    for row_id, target in zip(
        labels.loc[contradicts, model.id_column], labels.loc[contradicts, model.target], strict=True
    ):
        kept = in_force.get(row_id, first_of[row_id])
        if row_id not in conflicts and kept != target:
            conflicts[row_id] = _conflict(model_id, row_id, kept, int(target))
    return list(conflicts.values())


def _conflict(model_id: int, row_id: str, stored: int, new: int) -> LabelConflict:
    return LabelConflict(
        model_id=model_id, label_file_id=0, row_id=row_id, stored_target=stored, new_target=new
    )


def _per_chunk(
    model: ModelSettings, starts: "Iterable[datetime | None]"
) -> dict[datetime, tuple[datetime, int]]:
    """chunk start -> (chunk end, labels) for labels given by their chunk (None: held)."""
    counts: dict[datetime, tuple[datetime, int]] = {}
    for start in starts:
        if start is not None:
            end, n = counts.get(start, (model.chunk_period.end_of(start), 0))
            counts[start] = (end, n + 1)
    return counts


def match_held_labels(engine: Engine, model: ModelSettings, model_id: int, rows: RowChunks) -> int:
    """Give held labels whose rows have arrived their chunk; return how many."""
    import pandas as pd

    with transaction(engine) as session:
        held = queries.held_labels(session=session, model_id=model_id)
        if not held:
            return 0
        frame = pd.DataFrame(held, columns=["label_id", "row_id"])
        frame["chunk"] = rows.chunk_of.reindex(frame["row_id"]).to_numpy()
        found = frame.dropna(subset=["chunk"])
        matches = [
            (int(label_id), moment(int(ns)))
            for label_id, ns in zip(found["label_id"], found["chunk"], strict=True)
        ]
        queries.match_held(session=session, matches=matches)
        counts = _per_chunk(model, (start for _, start in matches))
        queries.add_labeled(session=session, model_id=model_id, counts=counts)
        queries.date_held(session=session, model_id=model_id, watermark=rows.watermark)
    return len(matches)


def _settle(
    path: Path, model: ModelSettings, decided: Any, outcome: LabelFileOutcome
) -> LabelFileOutcome:
    """Move a label file out of the inbox as its committed record decided."""
    assert model.labels_inbox is not None
    if decided.status == "quarantined":
        moved = move_into(path, model.labels_inbox / "quarantine")
        moved.with_name(moved.name + ".reason.txt").write_text(f"{decided.reason or ''}\n", "utf-8")
        log.warning("%s: quarantined label file %s: %s", model.name, path.name, decided.reason)
        outcome.reason = decided.reason
    else:
        move_into(path, model.labels_inbox / "processed")
        log.info("%s: %s label file %s", model.name, outcome.status, path.name)
    return outcome

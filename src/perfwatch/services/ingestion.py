"""Ingesting a model's inbox: the waiting files in passes of about `pass_rows` rows, each
pass in one transaction.

`read_inbox` reads, checks and prepares (and starts writing the rows to disk); `record`
commits and moves the files. Between the two, the cycle estimates the new chunks from
memory while the rows are still being written.

Each file is read and checked alone, so a broken one is quarantined with its own
reason; the accepted rows are then scored, de-duplicated, counted and written
together, as one Parquet segment under `data_dir`. Files move out of the inbox only
after the transaction that records them has committed: a process killed at any instant
loses nothing, and since batches are keyed by content hash, duplicates nothing.
"""

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, delete, insert
from sqlmodel import col

from perfwatch import faults
from perfwatch.config import ModelSettings, Settings
from perfwatch.domain.chunks import (
    CHUNK_COLUMN,
    ChunkPeriod,
    RowChunks,
    chunk_end,
    chunk_ns,
    moment,
)
from perfwatch.errors import PerfwatchError
from perfwatch.files import in_background, in_data_dir
from perfwatch.ingest import inbox
from perfwatch.ingest.batch import Part
from perfwatch.ingest.inbox import InboxFile, Piece
from perfwatch.services.registry import Champion
from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.segments import read_stored, segment_path, write_segment
from perfwatch.store.tables import Batch, BatchChunk, DataQualityFinding, utcnow

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from sqlmodel import Session

    from perfwatch.ingest.contract import Finding
    from perfwatch.ml.model import Skew

log = logging.getLogger(__name__)


@dataclass
class FileOutcome:
    file_name: str
    status: str  # ingested | quarantined | duplicate
    rows: int = 0
    reason: str | None = None


@dataclass
class PendingBatches:
    """The inbox read, checked and prepared, but not recorded yet (nothing is written to
    the store until `record`, and no file moves before that commit)."""

    files: list[InboxFile] = field(default_factory=list)
    known: dict[str, Batch] = field(default_factory=dict)  # content hash -> recorded batch
    first_of: dict[str, InboxFile] = field(default_factory=dict)  # content hash -> its file
    prepared: "_Rows | None" = None
    # quarantined records of contents read again and decided otherwise (see inbox.settled)
    superseded: list[Batch] = field(default_factory=list)

    @property
    def skew(self) -> "Skew | None":
        """The served scores re-scored by the champion (ml.model.SkewCheck), if any came."""
        return self.prepared.skew if self.prepared is not None else None

    @property
    def skew_through(self) -> "datetime | None":
        return self.prepared.skew_through if self.prepared is not None else None

    @property
    def rows(self) -> "pd.DataFrame | None":
        """The accepted rows, scored and de-duplicated, with their chunk column."""
        return self.prepared.rows if self.prepared is not None else None


def read_inbox(
    engine: Engine,
    settings: Settings,
    model: ModelSettings,
    champion: Champion,
    pieces: list[Piece],
    *,
    skew_checked: bool = False,
) -> PendingBatches:
    """Read and check these files (or parts) of the inbox (a pass: see inbox.passes);
    prepare the accepted rows. `skew_checked`: an earlier pass of the cycle re-scored
    served scores."""
    # a part whose file left the inbox: an earlier part of it was quarantined
    files = inbox.hashed(p for p in pieces if p.path.exists())
    if not files:
        return PendingBatches()
    recorded = _known(engine, champion.version.model_id, files)
    known = inbox.settled(recorded)
    pending = PendingBatches(files=files, known=known, first_of=inbox.first_of_each(files, known))

    def read(file: InboxFile) -> None:
        from perfwatch.ingest.rows import read_batch

        inbox.check(file, lambda path: read_batch(path, model=model, part=file.part), model.name)
        if file.part is not None and file.status == "quarantined":
            file.reason = _part_refused(file.part, file.reason)

    # Arrow decodes without the GIL: reading on two threads uses both cores
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(read, pending.first_of.values()))
    pending.known.update(inbox.quarantined_as_before(pending.first_of, recorded))
    pending.superseded = [recorded[key] for key in pending.first_of if key in recorded]
    accepted = [f for f in files if f.status == "ingested"]
    if accepted:
        pending.prepared = _prepare(engine, settings, model, champion, accepted, skew_checked)
    return pending


def _known(engine: Engine, model_id: int, files: list[InboxFile]) -> dict[str, Batch]:
    """content hash (a part's key) -> its recorded batch; a part of a file once recorded
    whole is known as that file."""
    wholes = {f.content_hash: f.part.file_hash for f in files if f.part is not None}
    with transaction(engine) as session:
        known = queries.known_files(
            session=session,
            kind=Batch,
            model_id=model_id,
            content_hashes=[f.content_hash for f in files] + list(wholes.values()),
        )
    for key, whole in wholes.items():
        if whole in known:
            known.setdefault(key, known[whole])
    return known


def _part_refused(part: Part, reason: str | None) -> str:
    """A part's quarantine reason, saying which rows and what became of the earlier ones."""
    where = f"rows {part.start + 1:,}-{part.stop:,} of {part.total:,}"
    if not part.start:
        return f"{where}: {reason}"
    return (
        f"{where}: {reason}; the rows before them were ingested (drop the corrected file"
        " again: rows whose ids are stored already are skipped as repeats)"
    )


def record(
    engine: Engine, model: ModelSettings, champion: Champion, pending: PendingBatches
) -> list[FileOutcome]:
    """Record every file (and the accepted rows) in one transaction, then move the files."""
    model_id = champion.version.model_id
    accepted = [f for f in pending.files if f.status == "ingested"]
    with transaction(engine) as session:
        _supersede(session, model, pending.superseded)
        session.add_all(
            [
                Batch(
                    model_id=model_id,
                    file_name=f.path.name,  # a part's rows are in its key and its reason
                    content_hash=f.content_hash,
                    status="quarantined",
                    reason=f.reason,
                )
                for f in pending.files
                if f.status == "quarantined"
            ]
        )
        if pending.prepared is not None:
            batch_ids = _record_batches(session, model, model_id, accepted, pending.prepared)
            _record_chunks_and_findings(session, model, model_id, batch_ids, pending.prepared)
            pending.prepared.written.result()  # on disk before the commit refers to it
        faults.reach("committing batches")
    faults.reach("moving batch files")
    outcomes = []
    for file in pending.files:
        decided = pending.known.get(file.content_hash) or pending.first_of[file.content_hash]
        outcomes.append(_settle(file, model, decided))
    return outcomes


def _supersede(session: "Session", model: ModelSettings, records: list[Batch]) -> None:
    """Delete the quarantine records that this cycle's decisions on the same contents
    replace (only ingested batches have rows, chunks and findings pointing at them)."""
    for record in records:
        log.info(
            "%s: %s, quarantined before (%s), was read again",
            model.name,
            record.file_name,
            record.reason,
        )
    ids = [record.id for record in records]
    if ids:
        session.execute(delete(Batch).where(col(Batch.id).in_(ids)))


@dataclass
class _Rows:
    """The accepted rows of a cycle, ready to record; their segment is being written."""

    rows: "pd.DataFrame"
    dropped: "pd.DataFrame"  # BATCH_COLUMN, CHUNK_COLUMN of rows dropped as repeated ids
    findings: list["Finding"]
    stored_path: str  # the segment, as the store records it (relative to data_dir)
    written: "Future[None]"
    skew: "Skew | None" = None  # of the served scores, when a check was due
    skew_through: "datetime | None" = None  # the newest re-scored row's time


def _prepare(
    engine: Engine,
    settings: Settings,
    model: ModelSettings,
    champion: Champion,
    accepted: list[InboxFile],
    skew_checked: bool,
) -> _Rows:
    """Combine, score and de-duplicate the accepted rows, count findings, start the write."""
    import pandas as pd

    from perfwatch.ingest.batch import assign_row_chunks
    from perfwatch.ingest.contract import soft_findings
    from perfwatch.ingest.rows import BATCH_COLUMN, combine
    from perfwatch.ml.model import fill_scores

    chunking, tail = model.chunking, None
    if isinstance(chunking, RowChunks):
        with transaction(engine) as session:
            tail = queries.open_chunk(session=session, model_id=champion.version.model_id)
    combined = combine([f.content for f in accepted], model=model, chunking=chunking, tail=tail)
    served = ~combined.needs_scores
    through = None if skew_checked else _skew_due(engine, model, champion, combined.rows, served)
    skew = _check_skew(model, champion, combined.rows, served=served) if through else None
    fill_scores(
        lambda: champion.model,
        combined.rows,
        inputs=champion.inputs,
        score_column=model.score_column,
        prediction_column=model.prediction_column,
        threshold=model.decision_threshold,
    )
    rows, stored_again = _drop_stored_ids(
        engine, model, champion.version.model_id, combined.rows, settings.data_dir
    )
    if isinstance(chunking, RowChunks) and len(stored_again):
        # a row sent again takes no place in a chunk: the others close the gap
        assign_row_chunks(rows, model.timestamp_column, chunking.size, tail)
    hashes = [f.content_hash for f in accepted]
    segment = segment_path(settings.data_dir, "batches", model.name, hashes)
    return _Rows(
        rows=rows,
        dropped=pd.concat([combined.repeated, stored_again]),
        findings=soft_findings(
            rows, champion.contract, batch_column=BATCH_COLUMN, chunk_column=CHUNK_COLUMN
        ),
        stored_path=in_data_dir(settings.data_dir, segment),
        # converted here, encoded on the writer thread: Parquet encoding releases the GIL,
        # so the file is written on the other core while CBPE and the inserts run
        written=_write_segment(segment, model, _segment_table(model, rows, hashes)),
        skew=skew,
        skew_through=through if skew is not None else None,
    )


def _skew_due(
    engine: Engine,
    model: ModelSettings,
    champion: Champion,
    rows: "pd.DataFrame",
    served: "pd.Series",
) -> "datetime | None":
    """The newest served row's time when re-scoring is due (else None): re-scoring loads
    the champion, seconds for a cold `run --once`, so it runs when the champion is new to
    the check, when some rows came without scores (it is loaded to score them anyway), and
    otherwise once per `skew_every` window of data time (aligned as chunks are: "7D", the
    first served rows of each week)."""
    if not served.any():
        return None
    newest = rows.loc[served.to_numpy(), model.timestamp_column].max().floor("us").to_pydatetime()
    if not served.all():
        return newest
    with transaction(engine) as session:
        earlier = queries.recent_skew_cycles(
            session=session, model_id=champion.version.model_id, cycles=1
        )
    last = earlier[0] if earlier else None
    if last is None or last.skew_version_id != champion.version.id or last.skew_through is None:
        return newest
    window = ChunkPeriod.parse(model.skew_every)
    return newest if window.start_of(newest) > window.start_of(last.skew_through) else None


def _check_skew(
    model: ModelSettings, champion: Champion, rows: "pd.DataFrame", *, served: "pd.Series"
) -> "Skew | None":
    """The skew check (None when no row came scored), or SkewFailed: a side step never
    holds up storing and estimating the rows."""
    from perfwatch.ml.model import SkewFailed, check_skew

    try:
        return check_skew(
            lambda: champion.model,
            rows,
            served=served,
            inputs=champion.inputs,
            score_column=model.score_column,
            tolerance=model.skew_tolerance,
        )
    except Exception as exc:  # recorded on the cycle and alerted on, never fatal
        log.exception("%s: the skew check failed", model.name)
        message = exc.message if isinstance(exc, PerfwatchError) else f"{type(exc).__name__}: {exc}"
        return SkewFailed(message)


def _drop_stored_ids(
    engine: Engine, model: ModelSettings, model_id: int, rows: "pd.DataFrame", data_dir: Path
) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Drop rows whose id is already stored in the same chunk (a producer's retry); for row
    chunks, in a chunk whose time span meets the new rows'. The dropped rows keep the
    chunk their id is stored in."""
    from perfwatch.ingest.rows import BATCH_COLUMN

    with transaction(engine) as session:
        if isinstance(model.chunking, RowChunks):
            low, high = rows[model.timestamp_column].min(), rows[model.timestamp_column].max()
            spans = queries.chunk_row_counts(session=session, model_id=model_id)
            starts = [s for s, (end, _) in spans.items() if s <= high and end >= low.floor("s")]
        else:
            starts = [moment(int(ns)) for ns in rows[CHUNK_COLUMN].unique()]
        earlier = queries.batches_in_chunks(session=session, model_id=model_id, chunk_starts=starts)
    if not earlier:
        return rows, rows.iloc[:0][[BATCH_COLUMN, CHUNK_COLUMN]]
    stored = read_stored(earlier, [model.id_column], {chunk_ns(s) for s in starts}, data_dir)
    where = stored.drop_duplicates(model.id_column).set_index(model.id_column)[CHUNK_COLUMN]
    seen = rows[model.id_column].isin(where.index).to_numpy()
    dropped = rows.loc[seen, [BATCH_COLUMN]].assign(
        **{CHUNK_COLUMN: rows.loc[seen, model.id_column].map(where).to_numpy()}
    )
    return rows.loc[~seen].reset_index(drop=True), dropped


def _segment_table(
    model: ModelSettings, rows: "pd.DataFrame", content_hashes: list[str]
) -> "pa.Table":
    """The cycle's rows as Arrow, each row tagged with its batch's content hash."""
    import pyarrow as pa

    from perfwatch.ingest.rows import BATCH_COLUMN

    table = pa.Table.from_pandas(rows.drop(columns=BATCH_COLUMN), preserve_index=False)
    tags = pa.DictionaryArray.from_arrays(
        pa.array(rows[BATCH_COLUMN].to_numpy()), pa.array(content_hashes)
    )
    return table.append_column(BATCH_COLUMN, tags)


def _write_segment(target: Path, model: ModelSettings, table: "pa.Table") -> "Future[None]":
    """Start writing the segment in the background; `record` waits for it before the
    commit refers to the file."""
    from perfwatch.ingest.rows import BATCH_COLUMN

    return in_background(lambda: write_segment(target, table, [*model.categorical, BATCH_COLUMN]))


def _record_batches(
    session: "Session",
    model: ModelSettings,
    model_id: int,
    accepted: list[InboxFile],
    prepared: _Rows,
) -> list[int]:
    """Insert one ingested batch per accepted file; return their ids, in file order."""
    from perfwatch.ingest.rows import BATCH_COLUMN

    spans = prepared.rows.groupby(BATCH_COLUMN)[model.timestamp_column].agg(["min", "max", "size"])
    repeats = prepared.dropped.groupby(BATCH_COLUMN).size()
    records = []
    for index, file in enumerate(accepted):
        record: dict[str, Any] = {
            "model_id": model_id,
            "file_name": file.path.name,
            "content_hash": file.content_hash,
            "status": "ingested",
            "rows": 0,
            "rows_dropped": int(repeats.get(index, 0)),
            "data_start": None,
            "data_end": None,
            "stored_path": prepared.stored_path,
            "ingested_at": utcnow(),
        }
        if index in spans.index:  # else every row repeated an id already stored
            first, last, count = spans.loc[index]
            record.update(
                rows=int(count),
                data_start=first.floor("us").to_pydatetime(),
                data_end=last.floor("us").to_pydatetime(),
            )
        records.append(record)
        file.content, file.rows = None, int(record["rows"])  # the Arrow copy is no longer needed
    # one round trip for all the files; ids come back in the order of the records
    inserted = insert(Batch).returning(col(Batch.id), sort_by_parameter_order=True)
    return [int(id_) for id_ in session.execute(inserted, records).scalars()]


def _record_chunks_and_findings(
    session: "Session",
    model: ModelSettings,
    model_id: int,
    batch_ids: list[int],
    prepared: _Rows,
) -> None:
    """How many rows each batch has in each chunk, and its data-quality findings."""
    from perfwatch.ingest.rows import BATCH_COLUMN

    grouped = prepared.rows.groupby([BATCH_COLUMN, CHUNK_COLUMN])[model.timestamp_column]
    sizes, lasts = grouped.size(), grouped.max()
    chunks = [
        {
            "batch_id": batch_ids[int(b)],
            "model_id": model_id,
            "chunk_start": moment(ns),
            "chunk_end": chunk_end(model.chunking, moment(ns), lasts[(b, ns)].value),
            "rows": int(n),
        }
        for (b, ns), n in sizes.items()
    ]
    if chunks:  # none when every row was stored already (a re-sent file)
        session.execute(insert(BatchChunk), chunks)
    records = [
        {
            "model_id": model_id,
            "batch_id": batch_ids[f.batch],
            "chunk_start": moment(f.chunk_ns),
            "column": f.column,
            "kind": f.kind,
            "count": f.count,
            "detail": f.detail,
        }
        for f in prepared.findings
    ]
    for (b, ns), n in prepared.dropped.groupby([BATCH_COLUMN, CHUNK_COLUMN]).size().items():
        records.append(
            {
                "model_id": model_id,
                "batch_id": batch_ids[int(b)],
                "chunk_start": moment(int(ns)),
                "column": model.id_column,
                "kind": "duplicate_id",
                "count": int(n),
                "detail": "rows with an id already seen were dropped",
            }
        )
    if records:
        session.execute(insert(DataQualityFinding), records)


def _settle(file: InboxFile, model: ModelSettings, decided: inbox.Decided) -> FileOutcome:
    """Move a file out of the inbox as its committed batch decided (itself, when it was
    recorded this cycle), and report it. A part other than the last leaves the file
    where it is, for the next pass (or cycle) to read on."""
    status = file.status if decided is file else "duplicate"
    if file.settles or decided.status == "quarantined":
        inbox.settle(file.path, model.inbox, decided)
    log_at = log.warning if status == "quarantined" else log.info
    log_at(
        "%s: %s %s%s",
        model.name,
        status,
        file.name,
        f": {file.reason}" if status == "quarantined" else "",
    )
    return FileOutcome(
        file.name,
        status,
        rows=file.rows if status == "ingested" else 0,
        reason=file.reason if status == "quarantined" else None,
    )

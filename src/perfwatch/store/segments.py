"""The Parquet half of the store: a cycle's accepted rows, or its matched labels, as one
segment file under data_dir, named after the files it holds (a retry after a crash
writes the same name again), written atomically; and reading stored rows, stored labels
and labeled rows back by chunk. The SQL store records which batches and label files live
in which segment (and holds the labels matched after their file's cycle).

A label segment's columns: `id`, TARGET, the chunk, the labeled row's served figures
under the model's names (time, score, prediction), `label_file_id` and, where the file
gave one, its label time.
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Engine

from perfwatch.domain.chunks import CHUNK_COLUMN, chunk_ns
from perfwatch.files import atomic_path
from perfwatch.store import queries
from perfwatch.store.db import transaction

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from perfwatch.store.queries import StoredFile
    from perfwatch.store.tables import Label

TARGET = "__target"  # a label's 0/1 in label segments, whatever the model calls its target


class Stored(Protocol):
    """A recorded batch (or anything else naming a segment relative to data_dir)."""

    @property
    def stored_path(self) -> str | None: ...


def segment_path(data_dir: Path, kind: str, model: str, content_hashes: list[str]) -> Path:
    """Where a cycle's `kind` (batches, labels) of a model go: named after its files."""
    name = hashlib.sha256("".join(content_hashes).encode()).hexdigest()[:32]
    return data_dir / kind / model / f"{name}.parquet"


def write_segment(target: Path, table: "pa.Table", dictionary: list[str]) -> None:
    """Write a segment atomically; dictionary-encode only `dictionary` columns (on ids and
    floats it doubles the write time)."""
    import pyarrow.parquet as pq

    with atomic_path(target) as temporary:
        pq.write_table(table, temporary, use_dictionary=dictionary)


def read_stored(
    batches: Iterable[Stored], columns: list[str], chunks: set[int], data_dir: Path
) -> "pd.DataFrame":
    """The stored rows of these batches that fall into these chunks (ns starts)."""
    return stored_table(batches, columns, chunks, data_dir).to_pandas()


def stored_table(
    batches: Iterable[Stored], columns: list[str], chunks: set[int], data_dir: Path
) -> "pa.Table":
    """As read_stored, as one Arrow table (with the chunk column)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = sorted({data_dir / b.stored_path for b in batches if b.stored_path})
    filters = [(CHUNK_COLUMN, "in", sorted(chunks))]
    tables = [
        pq.read_table(path, columns=[*columns, CHUNK_COLUMN], filters=filters) for path in paths
    ]
    if not tables:
        empty = {name: pa.array([], pa.string()) for name in columns}
        return pa.table({**empty, CHUNK_COLUMN: pa.array([], pa.int64())})
    return pa.concat_tables(tables, promote_options="permissive")


@dataclass
class RecentRows:
    """Stored rows by id: chunk and served figures, oldest chunk first (an id stored in
    two chunks, a producer's retry days later, is labeled in its first)."""

    table: "pa.Table | None"
    watermark: datetime | None

    def locate(self, ids: "pa.Array | pa.ChunkedArray") -> "np.ndarray":
        """Each id's row position in `table`, -1 where the row is not there."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.table is None or not len(ids):
            return np.full(len(ids), -1, dtype="int64")
        found = pc.index_in(ids.cast(pa.large_string()), value_set=self.table["id"])
        return np.asarray(found.fill_null(-1).to_numpy(), dtype="int64")

    def figures(self, positions: "np.ndarray") -> "pd.DataFrame":
        """The chunk and served figures of the rows at these (valid) positions."""
        assert self.table is not None
        return self.table.drop_columns(["id"]).take(positions).to_pandas()


def recent_rows(
    engine: Engine,
    data_dir: Path,
    model_id: int,
    served: list[str],
    *,
    window: timedelta | None,
    also: frozenset[datetime] = frozenset(),
) -> RecentRows:
    """The rows stored within `window` of the newest data (every row when None), and in
    the chunks `also` names, however old: `served` (the id first) and the chunk."""
    import pyarrow as pa

    with transaction(engine) as session:
        newest = queries.watermark(session=session, model_id=model_id)
        if newest is None:
            return RecentRows(None, None)
        since = None if window is None else newest - window
        starts = list(queries.chunk_row_counts(session=session, model_id=model_id, since=since))
        starts += sorted(also - set(starts))
        batches = queries.batches_in_chunks(session=session, model_id=model_id, chunk_starts=starts)
    table = stored_table(batches, served, {chunk_ns(s) for s in starts}, data_dir)
    table = table.sort_by(CHUNK_COLUMN)
    ids = table[served[0]].cast(pa.large_string())
    return RecentRows(table.drop_columns([served[0]]).append_column("id", ids), newest)


def stored_labels(
    engine: Engine, data_dir: Path, model_id: int, starts: list[datetime], served: list[str]
) -> "pd.DataFrame":
    """The labels of these chunks: `id`, TARGET, the chunk and the row's served figures
    (`served` names the row's id, time, score and prediction), whether matched in their
    file's cycle (label segments) or later (held in the SQL store until the row came)."""
    return stored_label_table(engine, data_dir, model_id, starts, served).to_pandas()


def _label_sources(
    engine: Engine, model_id: int, starts: list[datetime]
) -> tuple[list["StoredFile"], list["Label"]]:
    """Where the labels of these chunks are: the label files' segments, and the labels
    matched later (held in the SQL store until their rows came)."""
    with transaction(engine) as session:
        files = queries.label_files_in_chunks(
            session=session, model_id=model_id, chunk_starts=starts
        )
        return files, queries.matched_labels(
            session=session, model_id=model_id, chunk_starts=starts
        )


def label_delays(
    engine: Engine, data_dir: Path, model_id: int, starts: list[datetime], times: tuple[str, str]
) -> "pd.DataFrame":
    """TARGET and `delay` (seconds from each row's time to its label's) of the labels of
    these chunks that carry a label time; `times` names the row's time column and the
    label time column."""
    import pandas as pd
    import pyarrow.parquet as pq

    row_time, label_time = times
    files, matched_later = _label_sources(engine, model_id, starts)
    filters = [(CHUNK_COLUMN, "in", sorted(chunk_ns(s) for s in starts))]
    parts = [
        pq.read_table(path, columns=[TARGET, row_time, label_time], filters=filters).to_pandas()
        for path in sorted({data_dir / f.stored_path for f in files if f.stored_path})
        if label_time in pq.read_schema(path).names  # files without label times tell nothing
    ]
    parts.append(
        pd.DataFrame(
            [(m.target, m.row_time, m.labeled_at) for m in matched_later if m.labeled_at],
            columns=[TARGET, row_time, label_time],
        )
    )
    found = pd.concat([p for p in parts if len(p)] or parts[-1:], ignore_index=True)
    delay = pd.to_datetime(found[label_time], utc=True) - pd.to_datetime(found[row_time], utc=True)
    return pd.DataFrame({TARGET: found[TARGET], "delay": delay.dt.total_seconds()}).dropna()


def stored_label_table(
    engine: Engine, data_dir: Path, model_id: int, starts: list[datetime], served: list[str]
) -> "pa.Table":
    """As stored_labels, as Arrow; `served` may name the id alone (no served figures)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    files, matched_later = _label_sources(engine, model_id, starts)
    columns = ["id", TARGET, CHUNK_COLUMN, *served[1:]]
    filters = [(CHUNK_COLUMN, "in", sorted(chunk_ns(s) for s in starts))]
    paths = sorted({data_dir / f.stored_path for f in files if f.stored_path})
    parts = [pq.read_table(path, columns=columns, filters=filters) for path in paths]
    if matched_later:
        later = pd.DataFrame(
            [  # as many of these as `columns` names
                (m.row_id, m.target, chunk_ns(m.chunk_start), m.row_time, m.score, m.prediction)[
                    : len(columns)
                ]
                for m in matched_later
                if m.chunk_start is not None
            ],
            columns=columns,
        )
        if served[1:]:
            later = later.astype({served[1]: "datetime64[ns, UTC]"})
        parts.append(pa.Table.from_pandas(later, preserve_index=False))
    if not parts:
        return pa.Table.from_pandas(pd.DataFrame({c: [] for c in columns}), preserve_index=False)
    return pa.concat_tables(parts, promote_options="permissive")


def labeled_rows(
    engine: Engine,
    data_dir: Path,
    model_id: int,
    starts: list[datetime],
    served: list[str],
    columns: list[str],
) -> "pd.DataFrame":
    """The stored rows of these chunks that have a label: the id (`served[0]`), `columns`
    and the chunk of each row, with its label as TARGET (rows in their stored order)."""
    import numpy as np
    import pyarrow as pa

    with transaction(engine) as session:
        batches = queries.batches_in_chunks(session=session, model_id=model_id, chunk_starts=starts)
    labels = stored_label_table(engine, data_dir, model_id, starts, served[:1])
    rows = stored_table(batches, [served[0], *columns], {chunk_ns(s) for s in starts}, data_dir)
    # each side's (id, chunk) as one integer, looked up in the labels' index: a merge on
    # a million string ids spent a second hashing them twice
    keys = _id_chunk_keys(
        [labels.column("id"), rows.column(served[0])],
        [labels.column(CHUNK_COLUMN), rows.column(CHUNK_COLUMN)],
    )
    found = _positions(keys[0], keys[1])
    matched = np.flatnonzero(found >= 0)
    frame = rows.take(pa.array(matched)).to_pandas()
    frame[TARGET] = labels.column(TARGET).to_numpy()[found[matched]]
    return frame


def _id_chunk_keys(
    ids: list["pa.ChunkedArray"], chunks: list["pa.ChunkedArray"]
) -> list["np.ndarray"]:
    """Each (id, chunk) of each side as an int64: codes of one id dictionary over both
    sides, times the chunks, plus the chunk's place among them."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    text = [pc.cast(side, pa.large_string()) if len(side) else side for side in ids]
    joined = pa.chunked_array([c for side in text for c in side.chunks], type=pa.large_string())
    encoded = pc.dictionary_encode(joined).chunks
    codes = np.concatenate([c.indices.to_numpy() for c in encoded] or [np.zeros(0, np.int32)])
    starts = [np.asarray(side.to_numpy(), dtype="int64") for side in chunks]
    distinct, places = np.unique(np.concatenate(starts), return_inverse=True)
    keys = codes.astype("int64") * max(len(distinct), 1) + places
    split = len(starts[0])
    return [keys[:split], keys[split:]]


def _positions(labels: "np.ndarray", rows: "np.ndarray") -> "np.ndarray":
    """For each row key, the position of its label (-1 where none); a key labeled twice
    takes its first label."""
    import numpy as np

    if not len(labels):
        return np.full(len(rows), -1, dtype="int64")
    order = np.argsort(labels, kind="stable")
    ordered = labels[order]
    at = np.minimum(np.searchsorted(ordered, rows), len(ordered) - 1)
    return np.where(ordered[at] == rows, order[at], -1)

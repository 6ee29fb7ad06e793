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
    import pandas as pd
    import pyarrow.parquet as pq

    with transaction(engine) as session:
        files = queries.label_files_in_chunks(
            session=session, model_id=model_id, chunk_starts=starts
        )
        matched_later = queries.matched_labels(
            session=session, model_id=model_id, chunk_starts=starts
        )
    columns = ["id", TARGET, CHUNK_COLUMN, *served[1:]]
    filters = [(CHUNK_COLUMN, "in", sorted(chunk_ns(s) for s in starts))]
    paths = sorted({data_dir / f.stored_path for f in files if f.stored_path})
    parts = [pq.read_table(path, columns=columns, filters=filters).to_pandas() for path in paths]
    if matched_later:
        later = pd.DataFrame(
            [
                (m.row_id, m.target, chunk_ns(m.chunk_start), m.row_time, m.score, m.prediction)
                for m in matched_later
                if m.chunk_start is not None
            ],
            columns=columns,
        )
        parts.append(later.astype({served[1]: "datetime64[ns, UTC]"}))
    if not parts:
        return pd.DataFrame({c: [] for c in columns})
    return pd.concat(parts, ignore_index=True)


def labeled_rows(
    engine: Engine,
    data_dir: Path,
    model_id: int,
    starts: list[datetime],
    served: list[str],
    columns: list[str],
) -> "pd.DataFrame":
    """The stored rows of these chunks that have a label: the id (`served[0]`), `columns`
    and the chunk of each row, with its label as TARGET."""
    with transaction(engine) as session:
        batches = queries.batches_in_chunks(session=session, model_id=model_id, chunk_starts=starts)
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    labels = stored_labels(engine, data_dir, model_id, starts, served)
    rows = stored_table(batches, [served[0], *columns], {chunk_ns(s) for s in starts}, data_dir)
    # the ids of both as codes of one dictionary, and the join on those integers: a
    # merge on a million string ids spent a second hashing them twice
    ids = rows.column(served[0])
    both = pa.chunked_array([pa.array(labels["id"], type=ids.type), *ids.chunks], type=ids.type)
    codes = np.concatenate(
        [c.indices.to_numpy() for c in pc.dictionary_encode(both).chunks] or [np.zeros(0, np.int32)]
    )
    code = "__id_code"
    keyed = pd.DataFrame(
        {
            code: codes[: len(labels)],
            CHUNK_COLUMN: labels[CHUNK_COLUMN].to_numpy(dtype="int64"),
            TARGET: labels[TARGET].to_numpy(),
        }
    )
    frame = rows.to_pandas()
    frame[code] = codes[len(labels) :]
    return frame.merge(keyed, on=[code, CHUNK_COLUMN]).drop(columns=code)

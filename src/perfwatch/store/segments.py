"""The Parquet half of the store: a cycle's accepted rows, or its matched labels, as one
segment file under data_dir, named after the files it holds (a retry after a crash
writes the same name again), written atomically; and reading stored rows back by chunk.
The SQL store records which batches and label files live in which segment.
"""

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from perfwatch.domain.chunks import CHUNK_COLUMN
from perfwatch.files import atomic_path

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


class Stored(Protocol):
    """A recorded batch (or anything else naming a segment relative to data_dir)."""

    stored_path: str | None


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

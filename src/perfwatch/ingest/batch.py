"""Reading a batch or reference file (or a part of a big one) into Arrow, and assigning
rows to chunks."""

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from perfwatch.domain.chunks import (
    CHUNK_COLUMN,
    Chunking,
    RowChunks,
    period_chunks,
    row_chunks,
)
from perfwatch.errors import BatchRejected

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from perfwatch.config import ReadSettings


SUFFIXES = (".parquet", ".csv")
OTHER_DELIMITERS = (";", "\t", "|")
PARQUET_BATCH_ROWS = 1 << 16  # a part of a Parquet file is decoded this many rows at a time


@dataclass(frozen=True)
class Part:
    """Rows [start, stop) of a file of `total` rows too big for one pass: read alone, so
    a cycle holds one part in memory, never the whole file. For a CSV, `lines` are the
    byte offsets of the part's first line and past its last (the header is read apart)."""

    file_hash: str  # the whole file's sha256
    start: int
    stop: int
    total: int
    lines: tuple[int, int] | None = None

    @property
    def key(self) -> str:
        """What the part is recorded under: the file's hash and its rows."""
        return f"{self.file_hash}:rows={self.start}-{self.stop}"

    @property
    def last(self) -> bool:
        return self.stop >= self.total

    def describe(self, name: str) -> str:
        return f"{name} (rows {self.start + 1:,}-{self.stop:,} of {self.total:,})"


def read_arrow(
    path: Path, read: "ReadSettings | None" = None, part: Part | None = None
) -> "pa.Table":
    """Read a Parquet or CSV file, or a part of it (CSV as `read` says it is written);
    reject it, with the likely cause, when it cannot be read or is empty."""
    import pyarrow as pa

    if path.stat().st_size == 0:
        raise BatchRejected(
            f"{path.name} is empty (0 bytes)",
            hint="the producer wrote nothing; drop the complete file again",
        )
    try:
        table = (
            _read_parquet(path, part) if path.suffix == ".parquet" else _read_csv(path, read, part)
        )
    except (pa.ArrowException, OSError, ValueError) as exc:
        if path.suffix == ".csv":
            _check_delimiter(path, read)
        raise _unreadable(path, exc) from None
    if table.num_rows == 0:
        raise BatchRejected(f"{path.name} has no rows", hint="drop a file with rows")
    if path.suffix == ".csv" and table.num_columns == 1:
        _check_delimiter(path, read)
    return table


def _read_parquet(path: Path, part: Part | None) -> "pa.Table":
    """The file, or the part's rows: only the row groups holding them are decoded, in
    batches, so a part of a file written as one huge row group still fits in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    if part is None:
        return file.read(use_threads=False)
    groups: list[int] = []
    offset = skip = 0
    for index in range(file.num_row_groups):
        size = file.metadata.row_group(index).num_rows
        if offset + size > part.start and offset < part.stop:
            skip = skip if groups else part.start - offset
            groups.append(index)
        offset += size
    wanted, taken = part.stop - part.start, []
    for batch in file.iter_batches(PARQUET_BATCH_ROWS, row_groups=groups, use_threads=False):
        if skip >= batch.num_rows:
            skip -= batch.num_rows
            continue
        taken.append(batch.slice(skip, wanted))
        skip, wanted = 0, wanted - taken[-1].num_rows
        if not wanted:
            break
    return pa.Table.from_batches(taken, schema=file.schema_arrow)


def _read_csv(path: Path, read: "ReadSettings | None", part: Part | None) -> "pa.Table":
    """The file, or the header and the part's lines read as a file of their own (the
    types are inferred per part, as they would be for the rows dropped as a file)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    source: Path | pa.BufferReader = path
    if part is not None and part.lines is not None:
        first, end = part.lines
        with path.open("rb") as text:
            header = text.readline()
            text.seek(first)
            source = pa.BufferReader(header + text.read(end - first))
    return pcsv.read_csv(
        source,
        parse_options=pcsv.ParseOptions(delimiter=read.delimiter if read else ","),
        convert_options=pcsv.ConvertOptions(decimal_point=read.decimal if read else "."),
    )


def _unreadable(path: Path, exc: Exception) -> BatchRejected:
    if path.suffix == ".parquet":
        return BatchRejected(
            f"{path.name} is not a readable Parquet file: {exc}",
            hint="the file may be truncated or half-written; producers should write to a"
            " hidden .name and rename when done",
        )
    return BatchRejected(
        f"{path.name} is not a readable CSV file: {exc}",
        hint="rows with more or fewer fields than the header: a delimiter inside an unquoted"
        " value, another delimiter than the config's ([models.read] delimiter), or a file cut"
        " short (producers should write to a hidden .name and rename when done)",
    )


def _check_delimiter(path: Path, read: "ReadSettings | None") -> None:
    """A CSV whose header holds another delimiter and not the configured one was written
    with that one: say so, rather than "unreadable" or "missing columns"."""
    expected = read.delimiter if read else ","
    with path.open("rb") as file:
        header = file.readline(65536).decode("utf-8", errors="replace")
    found = [d for d in OTHER_DELIMITERS if d in header and d != expected]
    if found and expected not in header:
        shown = "\\t" if found[0] == "\t" else found[0]
        raise BatchRejected(
            f"{path.name} looks separated by {shown!r}, not {expected!r} (its header:"
            f" {header.strip()[:60]!r})",
            hint=f"set delimiter = {shown!r} under [models.read] for this model (and decimal ="
            " ',' if its numbers use a decimal comma), or write the file with commas",
        )


def assign_chunks(rows: "pd.DataFrame", timestamp_column: str, chunking: Chunking) -> None:
    """Add the chunk column: each row's chunk start, as int64 ns since the epoch (row
    chunks start afresh: a reference set, or a sample)."""
    if isinstance(chunking, RowChunks):
        assign_row_chunks(rows, timestamp_column, chunking.size, None)
    else:
        rows[CHUNK_COLUMN] = period_chunks(moments_of(rows, timestamp_column), chunking)


def assign_row_chunks(
    rows: "pd.DataFrame", timestamp_column: str, size: int, tail: tuple[int, int] | None
) -> None:
    """Add the chunk column for chunks of `size` rows continuing the open one (`tail`)."""
    rows[CHUNK_COLUMN] = row_chunks(moments_of(rows, timestamp_column), size, tail)


def moments_of(rows: "pd.DataFrame", timestamp_column: str) -> "np.ndarray":
    import numpy as np

    return rows[timestamp_column].to_numpy(dtype="datetime64[ns]").astype(np.int64)

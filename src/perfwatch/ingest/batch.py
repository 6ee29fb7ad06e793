"""Reading a batch or reference file into Arrow, and assigning rows to chunks."""

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


def read_arrow(path: Path, read: "ReadSettings | None" = None) -> "pa.Table":
    """Read a Parquet or CSV file (CSV as `read` says it is written); reject it, with the
    likely cause, when it cannot be read or is empty."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise BatchRejected(
            f"{path.name} is empty (0 bytes)",
            hint="the producer wrote nothing; drop the complete file again",
        )
    try:
        table = (
            pq.ParquetFile(path).read(use_threads=False)
            if path.suffix == ".parquet"
            else _read_csv(path, read)
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


def _read_csv(path: Path, read: "ReadSettings | None") -> "pa.Table":
    import pyarrow.csv as pcsv

    return pcsv.read_csv(
        path,
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

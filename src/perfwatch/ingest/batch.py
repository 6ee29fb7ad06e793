"""Reading a batch or reference file into Arrow, and assigning rows to chunks."""

from pathlib import Path
from typing import TYPE_CHECKING

from perfwatch.domain.chunks import CHUNK_COLUMN, ChunkPeriod
from perfwatch.errors import BatchRejected

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


SUFFIXES = (".parquet", ".csv")


def read_arrow(path: Path) -> "pa.Table":
    """Read a Parquet or CSV file; reject it (with a reason) when it cannot be read or is empty."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise BatchRejected(
            f"{path.name} is empty (0 bytes)",
            hint="the producer wrote nothing; drop the complete file again",
        )
    try:
        if path.suffix == ".parquet":
            table = pq.ParquetFile(path).read(use_threads=False)
        else:
            table = pcsv.read_csv(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        kind = "Parquet" if path.suffix == ".parquet" else "CSV"
        raise BatchRejected(
            f"{path.name} is not a readable {kind} file: {exc}",
            hint="the file may be truncated or half-written; producers should"
            " write to a hidden .name and rename when done",
        ) from None
    if table.num_rows == 0:
        raise BatchRejected(f"{path.name} has no rows", hint="drop a file with rows")
    return table


def assign_chunks(rows: "pd.DataFrame", timestamp_column: str, period: ChunkPeriod) -> None:
    """Add the chunk column: each row's chunk start, as int64 ns since the epoch."""
    import numpy as np

    moments = rows[timestamp_column].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    rows[CHUNK_COLUMN] = (
        moments - period.origin_ns
    ) // period.length_ns * period.length_ns + period.origin_ns

"""A nannyml Chunker that splits on perfwatch's own chunk column.

Imported only through perfwatch.ml.cbpe, after telemetry is switched off. Chunks then
match the store exactly, whatever rows a cycle hands to nannyml.
"""

from datetime import UTC, datetime
from typing import Any

import pandas as pd
from nannyml.chunk import Chunk, Chunker

from perfwatch.domain.chunks import (
    CHUNK_COLUMN,
    SECOND_NS,
    Chunking,
    ChunkPeriod,
    period_chunks,
    row_chunks,
)


def _moment(ns: int) -> datetime:
    return pd.Timestamp(ns, tz=UTC).to_pydatetime()


class PerfwatchChunker(Chunker):
    def __init__(self, timestamp_column: str, chunking: Chunking) -> None:
        super().__init__(timestamp_column)
        self.chunking = chunking

    def _split(self, data: pd.DataFrame) -> list[Any]:
        if CHUNK_COLUMN not in data.columns:
            # nannyml's drift methods chunk a single reference column with its timestamps
            data = data.copy()
            moments = data[self.timestamp_column_name].to_numpy(dtype="datetime64[ns]")
            moments = moments.astype("int64")
            data[CHUNK_COLUMN] = (
                period_chunks(moments, self.chunking)
                if isinstance(self.chunking, ChunkPeriod)
                else row_chunks(moments, self.chunking.size, None)
            )
        chunks = []
        for start_ns, rows in data.groupby(CHUNK_COLUMN, sort=True):
            start = _moment(int(start_ns))
            chunks.append(
                Chunk(
                    key=start.isoformat(),
                    data=rows,
                    start_datetime=start,
                    end_datetime=self._end(int(start_ns), rows),
                )
            )
        return chunks

    def _end(self, start_ns: int, rows: pd.DataFrame) -> datetime:
        if isinstance(self.chunking, ChunkPeriod):
            return _moment(start_ns + self.chunking.length_ns)
        last = int(rows[self.timestamp_column_name].max().value)  # a row chunk: its last row
        return _moment(last // SECOND_NS * SECOND_NS + SECOND_NS)

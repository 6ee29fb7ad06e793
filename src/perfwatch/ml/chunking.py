"""A nannyml Chunker that splits on perfwatch's own chunk column.

Imported only through perfwatch.ml.cbpe, after telemetry is switched off. Chunks then
match the store exactly, whatever rows a cycle hands to nannyml.
"""

from datetime import UTC, datetime
from typing import Any

import pandas as pd
from nannyml.chunk import Chunk, Chunker

from perfwatch.domain.chunks import CHUNK_COLUMN, ChunkPeriod
from perfwatch.ingest.batch import assign_chunks


def _moment(ns: int) -> datetime:
    return pd.Timestamp(ns, tz=UTC).to_pydatetime()


class PerfwatchChunker(Chunker):
    def __init__(self, timestamp_column: str, period: ChunkPeriod) -> None:
        super().__init__(timestamp_column)
        self.period = period
        self.length_ns = period.length_ns

    def _split(self, data: pd.DataFrame) -> list[Any]:
        if CHUNK_COLUMN not in data.columns:
            # nannyml's drift methods chunk a single column with its timestamps
            data = data.copy()
            assign_chunks(data, self.timestamp_column_name, self.period)
        chunks = []
        for start_ns, rows in data.groupby(CHUNK_COLUMN, sort=True):
            start, end = _moment(int(start_ns)), _moment(int(start_ns) + self.length_ns)
            chunks.append(
                Chunk(key=start.isoformat(), data=rows, start_datetime=start, end_datetime=end)
            )
        return chunks

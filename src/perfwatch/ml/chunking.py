"""A nannyml Chunker that splits on perfwatch's own chunk column.

Imported only through perfwatch.ml.cbpe, after telemetry is switched off. Chunks then
match the store exactly, whatever rows a cycle hands to nannyml.
"""

from datetime import UTC, datetime
from typing import Any

import pandas as pd
from nannyml.chunk import Chunk, Chunker

from perfwatch.domain.chunks import CHUNK_COLUMN


def _moment(ns: int) -> datetime:
    return pd.Timestamp(ns, tz=UTC).to_pydatetime()


class PerfwatchChunker(Chunker):
    def __init__(self, timestamp_column: str, length_ns: int) -> None:
        super().__init__(timestamp_column)
        self.length_ns = length_ns

    def _split(self, data: pd.DataFrame) -> list[Any]:
        chunks = []
        for start_ns, rows in data.groupby(CHUNK_COLUMN, sort=True):
            start, end = _moment(int(start_ns)), _moment(int(start_ns) + self.length_ns)
            chunks.append(
                Chunk(key=start.isoformat(), data=rows, start_datetime=start, end_datetime=end)
            )
        return chunks

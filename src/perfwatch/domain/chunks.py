"""Chunk arithmetic: which chunk a row belongs to, and when a chunk is complete.

A chunk period is a fixed duration of data time ("1D", "6h", "1W", "30min"). Windows are
anchored to a fixed origin (Monday 2000-01-03 00:00 UTC), never to the first row seen, so
the same timestamp falls into the same chunk in every cycle, replay and process.

Row chunks (`chunk_rows = N`) hold N rows each, in the order rows arrive, in timestamp
order within a cycle: a cycle's rows first fill the open chunk, then start new ones. A
row chunk starts at the second of its first row (one second after the previous chunk's
start at the least, so starts stay distinct and ordered), ends at the second after its
last row, and is complete once it holds N rows.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from perfwatch.domain.durations import parse_duration

if TYPE_CHECKING:
    import numpy as np

ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)  # a Monday: weekly chunks start on Mondays
# The column perfwatch adds to rows in memory and on disk: each row's chunk start, as
# int64 nanoseconds since the epoch.
CHUNK_COLUMN = "__chunk_start"


@dataclass(frozen=True)
class ChunkPeriod:
    """A fixed-length window of data time."""

    length: timedelta

    @classmethod
    def parse(cls, text: str) -> "ChunkPeriod":
        """Parse "1D", "6h", "2W", "30min"; raise ValueError for anything else."""
        return cls(length=parse_duration(text))

    @property
    def length_ns(self) -> int:
        return self.length // timedelta(microseconds=1) * 1000

    @property
    def origin_ns(self) -> int:
        return int(ORIGIN.timestamp()) * 1_000_000_000

    def start_of(self, moment: datetime) -> datetime:
        """The start of the chunk holding `moment` (a UTC-aware datetime)."""
        steps = (moment - ORIGIN) // self.length
        return ORIGIN + steps * self.length

    def end_of(self, start: datetime) -> datetime:
        """The exclusive end of the chunk starting at `start`."""
        return start + self.length

    def complete(self, end: datetime, rows: int, watermark: datetime | None) -> bool:
        return is_complete(end, watermark)

    def mature(
        self, end: datetime, rows: int, watermark: datetime | None, horizon: timedelta | None
    ) -> bool:
        return is_mature(end, watermark, horizon)

    def describe(self) -> str:
        from perfwatch.domain.durations import format_duration

        return format_duration(self.length)


@dataclass(frozen=True)
class RowChunks:
    """Chunks of a fixed number of rows."""

    size: int

    def complete(self, end: datetime, rows: int, watermark: datetime | None) -> bool:
        return rows >= self.size

    def mature(
        self, end: datetime, rows: int, watermark: datetime | None, horizon: timedelta | None
    ) -> bool:
        """Complete, and (with a label horizon) that much data time past its last row."""
        return self.complete(end, rows, watermark) and (
            horizon is None or is_complete(end + horizon, watermark)
        )

    def describe(self) -> str:
        return f"{self.size} rows"


Chunking = ChunkPeriod | RowChunks
SECOND_NS = 1_000_000_000


def period_chunks(moments_ns: "np.ndarray", period: ChunkPeriod) -> "np.ndarray":
    """Each moment's chunk start (ns), for chunks of a period."""
    origin, length = period.origin_ns, period.length_ns
    return (moments_ns - origin) // length * length + origin


def row_chunks(moments_ns: "np.ndarray", size: int, tail: tuple[int, int] | None) -> "np.ndarray":
    """Each moment's chunk start (ns), for chunks of `size` rows: in timestamp order, the
    rows first fill the open chunk (`tail`: its start ns and rows so far), then start new
    ones."""
    import numpy as np

    order = np.argsort(moments_ns, kind="stable")
    start, filled = tail if tail is not None else (None, size)
    room = max(size - filled, 0)
    position = np.arange(len(moments_ns))
    group = np.where(position < room, -1, (position - room) // size)
    firsts = moments_ns[order][room::size].tolist()
    starts = np.array([*row_chunk_starts(firsts, start), start or 0], dtype=np.int64)
    chunks = np.empty(len(moments_ns), dtype=np.int64)
    chunks[order] = starts[group]  # group -1: the open chunk's start, the last entry
    return chunks


def row_chunk_starts(first_times_ns: list[int], previous_start_ns: int | None) -> list[int]:
    """The starts of new row chunks, given the timestamp of each one's first row: its
    second, and at least one second after the chunk before."""
    starts: list[int] = []
    previous = previous_start_ns
    for first in first_times_ns:
        start = first // SECOND_NS * SECOND_NS
        if previous is not None and start <= previous:
            start = previous + SECOND_NS
        starts.append(start)
        previous = start
    return starts


def moment(ns: int) -> datetime:
    """A chunk column value (ns since the epoch) as a UTC datetime."""
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC)


def chunk_end(chunking: Chunking, start: datetime, last_ns: int) -> datetime:
    """A chunk's end: its period's, or for a row chunk the second after its last row
    (`last_ns`: the last of the rows at hand; the store keeps the latest)."""
    if isinstance(chunking, RowChunks):
        return moment(last_ns) + timedelta(seconds=1)
    return chunking.end_of(start)


def chunk_ns(start: datetime) -> int:
    """A chunk start as the chunk column holds it: ns since the epoch."""
    return int(start.timestamp()) * 1_000_000_000


def is_complete(chunk_end: datetime, watermark: datetime | None) -> bool:
    """A chunk is complete once data time has reached its (exclusive) end.

    The watermark is the newest timestamp ingested for the model: rows that old or
    newer exist, so the producer has moved past the chunk.
    """
    return watermark is not None and watermark >= chunk_end


def is_mature(chunk_end: datetime, watermark: datetime | None, horizon: timedelta | None) -> bool:
    """A chunk's labels are final once data time has passed its end by the label horizon
    (in predictive maintenance a "no failure" is only true once the horizon has passed)."""
    return is_complete(chunk_end + horizon if horizon else chunk_end, watermark)


def closing_time(
    watermark: datetime | None, now: datetime, complete_after: timedelta | None
) -> datetime | None:
    """The time up to which chunks are complete: the newest data time, or, with
    `complete_after`, also the wall clock less it, so the last chunk of a line that has
    gone quiet is closed (and judged) by the clock. None before any data."""
    if watermark is None or complete_after is None:
        return watermark
    return max(watermark, now - complete_after)

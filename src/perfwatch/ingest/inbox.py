"""An inbox, for batch files and label files alike: what waits in it, each file read and
checked alone (accepted, or quarantined with a reason a person can act on), and the
file's move out of it, only once its record is committed.

A batch file too big for one pass is read in parts (ingest.batch.Part), each recorded on
its own under the file's hash and its rows; the file leaves the inbox with its last part.
"""

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from perfwatch.errors import BatchRejected
from perfwatch.files import move_into, sha256_file, write_atomically
from perfwatch.ingest.batch import SUFFIXES, Part

log = logging.getLogger(__name__)


@dataclass
class InboxFile:
    """A waiting file: its content hash, what its check decided, what was read of it."""

    path: Path
    content_hash: str
    status: str = "duplicate"  # ingested | quarantined | duplicate
    reason: str | None = None
    content: Any = None  # what the reader made of it (an Arrow table), until recorded
    rows: int = 0
    part: Part | None = None  # of a file too big for one pass; content_hash is its key

    @property
    def name(self) -> str:
        return self.part.describe(self.path.name) if self.part else self.path.name

    @property
    def settles(self) -> bool:
        """Whether recording this ends the file's stay in the inbox: a whole file, or the
        last part of one (a quarantined part ends it too: see ingestion._settle)."""
        return self.part is None or self.part.last


@dataclass(frozen=True)
class Piece:
    """What one pass takes of a waiting file: all of it, or one part."""

    path: Path
    part: Part | None = None


class Decided(Protocol):
    """A committed record of a file: a batch or a label file."""

    status: str
    reason: str | None


R = TypeVar("R", bound=Decided)


def waiting(inbox: Path | None) -> list[Path]:
    """The files waiting in an inbox, oldest name first; hidden (being written) ones and
    other suffixes skipped."""
    if inbox is None or not inbox.is_dir():
        return []
    return sorted(
        p
        for p in inbox.iterdir()
        if p.is_file() and p.suffix in SUFFIXES and not p.name.startswith(".")
    )


def passes(paths: list[Path], rows: int) -> list[list[Piece]]:
    """The files in groups of about `rows` rows, in order: what one pass of a cycle ingests
    and estimates together. A file bigger than that is cut into parts of `rows` rows, a
    pass each."""
    groups: list[list[Piece]] = []
    held = 0
    for path in paths:
        count = rows_in(path)
        if count > rows:
            groups += [[Piece(path, part)] for part in parts(path, rows, count)]
            held = rows  # the next file starts a pass of its own
            continue
        if not groups or (held and held + count > rows):
            groups.append([])
            held = 0
        groups[-1].append(Piece(path))
        held += count
    return groups


def parts(path: Path, rows: int, total: int) -> list[Part]:
    """A big file's parts of `rows` rows (a CSV's by its lines)."""
    file_hash = sha256_file(path)
    if path.suffix == ".parquet":
        return [
            Part(file_hash, start, min(start + rows, total), total)
            for start in range(0, total, rows)
        ]
    starts, total = _line_starts(path, rows)
    ends = [*starts[1:], path.stat().st_size]
    return [
        Part(file_hash, index * rows, min((index + 1) * rows, total), total, lines=(first, end))
        for index, (first, end) in enumerate(zip(starts, ends, strict=True))
    ]


def _line_starts(path: Path, every: int) -> tuple[list[int], int]:
    """Byte offsets of the CSV's data lines 0, every, 2 * every, ... (after the header),
    and how many data lines it has (the last may lack its newline)."""
    import numpy as np

    starts: list[int] = []
    newlines = 0  # before the block
    offset, last = 0, b"\n"
    with path.open("rb") as text:
        for block in iter(lambda: text.read(1 << 20), b""):
            found = np.flatnonzero(np.frombuffer(block, np.uint8) == ord("\n"))
            # data line d starts after the newline numbered d + 1 (from 1: the header's)
            numbers = newlines + 1 + np.arange(len(found))
            starts += (offset + found[(numbers - 1) % every == 0] + 1).tolist()
            newlines += len(found)
            offset, last = offset + len(block), block[-1:]
    lines = max(newlines - 1, 0) + (last != b"\n")
    return [start for start in starts if start < offset], lines


def rows_in(path: Path) -> int:
    """A file's rows, cheaply: from a Parquet footer, or a CSV's line count. A file that
    cannot be counted counts as none: reading it will quarantine it with the reason."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        with path.open("rb") as text:
            lines = sum(block.count(b"\n") for block in iter(lambda: text.read(1 << 20), b""))
        return max(lines - 1, 0)  # the header
    except Exception:
        return 0


def hashed(pieces: Iterable[Path | Piece]) -> list[InboxFile]:
    """Each file with its content hash (a part: with its key)."""
    files = []
    for piece in pieces:
        if isinstance(piece, Path):
            piece = Piece(piece)
        if piece.part is not None:
            files.append(InboxFile(piece.path, piece.part.key, part=piece.part))
        else:
            files.append(InboxFile(piece.path, sha256_file(piece.path)))
    return files


def first_of_each(files: list[InboxFile], known: Iterable[str]) -> dict[str, InboxFile]:
    """content hash -> the first file with it that is not recorded yet (the others are
    the same file dropped twice)."""
    recorded, first = set(known), {}
    for file in files:
        if file.content_hash not in recorded and file.content_hash not in first:
            first[file.content_hash] = file
    return first


def settled(known: Mapping[str, R]) -> dict[str, R]:
    """The records that settle their content for good: the ingested ones. A quarantined
    content is read again when its file comes back: the cause may have been the model's
    config, fixed since, and not the file."""
    return {key: record for key, record in known.items() if record.status != "quarantined"}


def quarantined_as_before(first_of: dict[str, InboxFile], known: Mapping[str, R]) -> dict[str, R]:
    """The records of the files (read again, see `settled`) that their check quarantined
    again for the reason recorded: nothing new to record, whether a person re-sent the file
    unchanged or a crash left it in the inbox after its record committed. They leave
    `first_of` and count as duplicates of their record."""
    again = {}
    for key, file in list(first_of.items()):
        record = known.get(key)
        if record is not None and file.status == "quarantined" and file.reason == record.reason:
            again[key] = record
            file.status, file.reason, file.content = "duplicate", None, None
            del first_of[key]
    return again


def check(file: InboxFile, read: Callable[[Path], Any], owner: str) -> None:
    """Read one file: accepted with what was read, or quarantined with the reason. A file
    whose check fails in a way nobody foresaw is quarantined too: one odd file must not
    block the inbox, cycle after cycle."""
    try:
        file.content = read(file.path)
        file.status = "ingested"
    except BatchRejected as rejection:
        file.status = "quarantined"
        file.reason = rejection.message + (f" (hint: {rejection.hint})" if rejection.hint else "")
    except Exception as exc:
        log.exception("%s: reading %s failed unexpectedly", owner, file.path.name)
        file.status = "quarantined"
        file.reason = unexpected_failure(file.path, exc)


def unexpected_failure(path: Path, exc: Exception) -> str:
    """The quarantine reason of a file whose check failed in a way nobody foresaw."""
    return (
        f"{path.name} could not be checked: {type(exc).__name__}: {exc}"
        " (hint: fix the file and drop it again; if it looks right, report this"
        " with the file: it may be a perfwatch bug)"
    )


def settle(path: Path, inbox: Path, decided: Decided) -> Path:
    """Move a file out of the inbox as its committed record decided: to processed/, or to
    quarantine/ with its reason beside it."""
    if decided.status != "quarantined":
        return move_into(path, inbox / "processed")
    moved = move_into(path, inbox / "quarantine")
    write_atomically(
        moved.with_name(moved.name + ".reason.txt"), f"{decided.reason or ''}\n".encode()
    )
    return moved

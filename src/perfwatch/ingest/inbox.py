"""An inbox, for batch files and label files alike: what waits in it, each file read and
checked alone (accepted, or quarantined with a reason a person can act on), and the
file's move out of it, only once its record is committed.
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from perfwatch.errors import BatchRejected
from perfwatch.files import move_into, sha256_file, write_atomically
from perfwatch.ingest.batch import SUFFIXES

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


class Decided(Protocol):
    """A committed record of a file: a batch or a label file."""

    status: str
    reason: str | None


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


def passes(paths: list[Path], rows: int) -> list[list[Path]]:
    """The files in groups of about `rows` rows, in order (a file bigger than that is a
    group of its own): what one pass of a cycle ingests and estimates together."""
    groups: list[list[Path]] = []
    held = 0
    for path in paths:
        count = rows_in(path)
        if not groups or (held and held + count > rows):
            groups.append([])
            held = 0
        groups[-1].append(path)
        held += count
    return groups


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


def hashed(paths: Iterable[Path]) -> list[InboxFile]:
    return [InboxFile(path, sha256_file(path)) for path in paths]


def first_of_each(files: list[InboxFile], known: Iterable[str]) -> dict[str, InboxFile]:
    """content hash -> the first file with it that is not recorded yet (the others are
    the same file dropped twice)."""
    recorded, first = set(known), {}
    for file in files:
        if file.content_hash not in recorded and file.content_hash not in first:
            first[file.content_hash] = file
    return first


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

"""File plumbing every service shares: content hashes, atomic writes, safe moves."""

import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from perfwatch.errors import ArtifactChanged


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, expected: str, what: str) -> None:
    """Raise ArtifactChanged unless the file exists and still has the registered sha256."""
    if not path.is_file():
        raise ArtifactChanged(
            f"{what} {path} is missing",
            hint="restore it, or register a new version with `perfwatch register`",
        )
    found = sha256_file(path)
    if found != expected:
        raise ArtifactChanged(
            f"{what} {path} changed since it was registered (sha256 {found[:12]}…,"
            f" registered {expected[:12]}…); refusing to load it",
            hint="restore the registered file, or register the new one as a new version with"
            " `perfwatch register`",
        )


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """The one way perfwatch writes a file: to a hidden temporary name in the target's
    folder (which inbox scans and readers skip), flushed to disk, then renamed onto the
    target, so nobody ever reads half a file and a killed process leaves none behind
    under the real name. Yields the temporary path to write; removes it on failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        yield temporary
        with temporary.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:  # a full disk, a signal: no half-written file stays behind
        temporary.unlink(missing_ok=True)
        raise


def in_background(write: Callable[[], None]) -> "Future[None]":
    """Start a write on a thread of its own, which ends with it (no pool outlives the
    caller): Parquet and joblib encode without the GIL, so the write runs on the other
    core. The caller waits on the future (`.result()`) before anything refers to the file."""
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="perfwatch-write")
    try:
        return writer.submit(write)
    finally:
        writer.shutdown(wait=False)  # the submitted write still runs to its end


def write_atomically(path: Path, payload: bytes) -> None:
    with atomic_path(path) as temporary:
        temporary.write_bytes(payload)


def copy_atomically(source: Path, target: Path) -> None:
    with atomic_path(target) as temporary:
        shutil.copyfile(source, temporary)


def move_into(path: Path, folder: Path) -> Path:
    """Move a file into folder, never overwriting: a repeated name gets a numbered suffix."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    counter = 1
    while target.exists():
        target = folder / f"{path.stem}.{counter}{path.suffix}"
        counter += 1
    os.replace(path, target)
    return target


def in_data_dir(data_dir: Path, path: Path) -> str:
    """How the store records a file under data_dir: relative to it, so the folder can move."""
    return path.relative_to(data_dir).as_posix()

"""The one way perfwatch writes a file: hidden temporary name, flushed, renamed."""

from pathlib import Path

import pytest

from perfwatch.files import atomic_path, copy_atomically, write_atomically


def test_a_write_lands_whole_under_its_name(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "report.html"
    write_atomically(target, b"<html>")
    assert target.read_bytes() == b"<html>"
    copy_atomically(target, tmp_path / "copy.html")
    assert (tmp_path / "copy.html").read_bytes() == b"<html>"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "copy.html",
        "report.html",
    ]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "segment.parquet"
    target.write_bytes(b"old")
    with pytest.raises(OSError, match="No space"), atomic_path(target) as temporary:
        assert temporary.name.startswith(".")  # hidden: inbox scans and readers skip it
        temporary.write_bytes(b"half")
        raise OSError(28, "No space left on device")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["segment.parquet"]

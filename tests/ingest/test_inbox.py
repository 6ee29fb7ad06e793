"""An inbox on its own: what waits, the first of each content, the check that accepts
or quarantines, and the move out once recorded."""

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from perfwatch.errors import BatchRejected
from perfwatch.ingest import inbox

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


@dataclass
class Record:
    status: str
    reason: str | None = None


def drop(folder: Path, name: str, text: str = "id,x\n1,2\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_waiting_files_are_the_visible_batches_oldest_name_first(tmp_path: Path) -> None:
    for name in ["b.csv", "a.parquet", ".c.csv", "notes.txt"]:
        drop(tmp_path, name)
    (tmp_path / "processed").mkdir()
    assert [p.name for p in inbox.waiting(tmp_path)] == ["a.parquet", "b.csv"]
    assert inbox.waiting(tmp_path / "absent") == inbox.waiting(None) == []


def csv_rows(n: int, *, newline_at_end: bool = True) -> str:
    text = "id,x\n" + "".join(f"{i},{i % 7}\n" for i in range(n))
    return text if newline_at_end else text[:-1]


def test_passes_group_files_by_rows_in_order_a_big_file_in_parts(tmp_path: Path) -> None:
    import pandas as pd

    small = [drop(tmp_path, f"{name}.csv", csv_rows(300)) for name in "abc"]
    big = drop(tmp_path, "d.csv", csv_rows(2_500))
    parquet = tmp_path / "e.parquet"
    pd.DataFrame({"id": range(400), "x": 1}).to_parquet(parquet)
    broken = drop(tmp_path, "f.parquet", "not parquet")
    assert inbox.rows_in(small[0]) == 300 and inbox.rows_in(parquet) == 400
    assert inbox.rows_in(broken) == 0, "its reading will say what is wrong"
    files = [*small, big, parquet, broken]
    planned = inbox.passes(files, 1_000)
    assert [
        [(p.path, p.part and (p.part.start, p.part.stop)) for p in group] for group in planned
    ] == [
        [(path, None) for path in small],
        [(big, (0, 1_000))],
        [(big, (1_000, 2_000))],
        [(big, (2_000, 2_500))],
        [(parquet, None), (broken, None)],
    ]
    assert [p.part.last for [p] in planned[1:4] if p.part] == [False, False, True]
    assert inbox.passes(files, 10_000) == [[inbox.Piece(path) for path in files]]
    assert inbox.passes([], 1_000) == []


@pytest.mark.parametrize(
    "layout", ["csv", "csv without a last newline", "parquet", "one row group"]
)
def test_the_parts_of_a_big_file_read_back_as_the_file(tmp_path: Path, layout: str) -> None:
    """Each row in exactly one part, in order, typed as in the whole file."""
    import pandas as pd
    import pyarrow.parquet as pq

    from perfwatch.ingest.batch import read_arrow

    if layout.startswith("csv"):
        path = drop(tmp_path, "big.csv", csv_rows(2_345, newline_at_end=layout == "csv"))
    else:
        path = tmp_path / "big.parquet"
        frame = pd.DataFrame({"id": [f"r{i}" for i in range(2_345)], "x": range(2_345)})
        pq.write_table(
            pa_table(frame), path, row_group_size=2_345 if layout == "one row group" else 300
        )
    planned = inbox.passes([path], 500)
    assert len(planned) == 5 and all(len(group) == 1 for group in planned)
    parts = [read_arrow(path, part=group[0].part) for group in planned]
    assert [p.num_rows for p in parts] == [500, 500, 500, 500, 345]
    whole = read_arrow(path).to_pandas()
    together = pd.concat([p.to_pandas() for p in parts], ignore_index=True)
    pd.testing.assert_frame_equal(together, whole)
    [first] = inbox.hashed(planned[0])
    assert first.content_hash.endswith(":rows=0-500") and first.name == "big" + path.suffix + (
        " (rows 1-500 of 2,345)"
    )


def pa_table(frame: "pd.DataFrame") -> "pa.Table":
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False)


def test_the_first_unrecorded_file_of_each_content_is_read(tmp_path: Path) -> None:
    files = inbox.hashed(
        [
            drop(tmp_path, "1.csv"),
            drop(tmp_path, "2.csv"),  # the same bytes again
            drop(tmp_path, "3.csv", "id,x\n9,9\n"),
            drop(tmp_path, "4.csv", "id,x\n5,5\n"),
        ]
    )
    first = inbox.first_of_each(files, known=[files[3].content_hash])  # 4.csv seen before
    assert [f.path.name for f in first.values()] == ["1.csv", "3.csv"]


def test_a_check_accepts_or_quarantines_with_a_reason(tmp_path: Path) -> None:
    def read(path: Path) -> str:
        if "bad" in path.name:
            raise BatchRejected("column 'x' holds text", hint="fix the producer")
        if "odd" in path.name:
            raise KeyError("surprise")
        return "content"

    good, bad, odd = inbox.hashed(drop(tmp_path, f"{n}.csv") for n in ["good", "bad", "odd"])
    for file in (good, bad, odd):
        inbox.check(file, read, "press")
    assert (good.status, good.content) == ("ingested", "content")
    assert (bad.status, bad.reason) == (
        "quarantined",
        "column 'x' holds text (hint: fix the producer)",
    )
    assert odd.status == "quarantined" and odd.reason is not None
    assert "KeyError" in odd.reason and "odd.csv could not be checked" in odd.reason


def test_settling_moves_the_file_and_keeps_the_reason_beside_it(tmp_path: Path) -> None:
    moved = inbox.settle(drop(tmp_path, "ok.csv"), tmp_path, Record("ingested"))
    assert moved == tmp_path / "processed" / "ok.csv" and moved.is_file()
    quarantined = inbox.settle(drop(tmp_path, "bad.csv"), tmp_path, Record("quarantined", "why"))
    assert quarantined.parent == tmp_path / "quarantine"
    assert quarantined.with_name("bad.csv.reason.txt").read_text() == "why\n"
    assert inbox.waiting(tmp_path) == []


def test_a_file_settled_twice_under_one_name_keeps_both(tmp_path: Path) -> None:
    first = inbox.settle(drop(tmp_path, "day.csv"), tmp_path, Record("ingested"))
    second = inbox.settle(drop(tmp_path, "day.csv", "id,x\n3,3\n"), tmp_path, Record("ingested"))
    assert first != second and first.read_text() != second.read_text()


@pytest.mark.parametrize("status", ["ingested", "duplicate"])
def test_anything_not_quarantined_goes_to_processed(tmp_path: Path, status: str) -> None:
    moved = inbox.settle(drop(tmp_path, "f.csv"), tmp_path, Record(status))
    assert moved.parent.name == "processed"

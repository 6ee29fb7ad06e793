"""Reading batch, reference and label files on their own: the types perfwatch works in,
and every rejection naming its cause."""

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from perfwatch.config import ModelSettings, ReadSettings
from perfwatch.domain.chunks import CHUNK_COLUMN, ChunkPeriod, RowChunks, chunk_ns
from perfwatch.errors import BatchRejected
from perfwatch.ingest.batch import assign_chunks, read_arrow
from perfwatch.ingest.labels import first_targets, read_labels
from perfwatch.ingest.rows import first_occurrences, read_batch


def model(**read: str) -> ModelSettings:
    return ModelSettings(
        name="press",
        target="failure",
        features=["torque", "line"],
        categorical=["line"],
        inbox=Path("inbox"),
        read=ReadSettings(**read),
    )


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_batch_is_typed_as_perfwatch_works_with_it(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "day.csv",
        "id,timestamp,torque,line,y_pred_proba,extra\n"
        "7,2026-03-02T10:00:00,41.5,3,0.25,x\n"
        "8,2026-03-02T11:00:00+01:00,,B,,y\n",
    )
    table = read_batch(path, model=model())
    assert table.column_names == ["id", "timestamp", "torque", "line", "y_pred_proba"]
    assert table["id"].to_pylist() == ["7", "8"]  # ids are text, whatever they look like
    assert table["line"].to_pylist() == ["3", "B"]  # categories too
    assert table.schema.field("timestamp").type == pa.timestamp("ns", "UTC")
    times = table["timestamp"].to_pandas()
    assert times[1] == pd.Timestamp("2026-03-02T10:00:00Z")  # offsets honoured, naive is UTC
    assert table["torque"].to_pylist()[1] is None or pd.isna(table["torque"].to_pylist()[1])


def test_a_boolean_category_reads_alike_from_csv_and_parquet(tmp_path: Path) -> None:
    """pandas writes a boolean as True/False; a CSV reader takes that for a boolean, a
    Parquet reference of labels keeps the text: both must be the same category."""
    rows = pd.DataFrame(
        {"id": ["a", "b", "c"], "timestamp": ["2026-03-02T10:00:00"] * 3, "torque": 1.0}
    )
    flags = pd.Series([True, False, None], dtype="object")
    rows.assign(line=flags).to_csv(tmp_path / "day.csv", index=False)
    rows.assign(line=flags.map({True: "True", False: "False"}).astype("category")).to_parquet(
        tmp_path / "reference.parquet"
    )
    rows.assign(line=flags.astype("boolean")).to_parquet(tmp_path / "typed.parquet")
    read = [read_batch(tmp_path / n, model=model()) for n in ("day.csv", "reference.parquet")]
    read.append(read_batch(tmp_path / "typed.parquet", model=model()))
    for table in read:
        assert table.column("line").to_pylist() == ["True", "False", None]


@pytest.mark.parametrize(
    ("text", "read", "cause"),
    [
        ("id;timestamp;torque;line\n1;2026-03-02;4,5;a\n", {}, "separated by ';'"),
        ("id,timestamp,torque,line\n1,2026-03-02,ERR,a\n", {}, "holds text where numbers"),
        ("id,timestamp,torque,line\n1,1772445600,4.5,a\n", {}, "not timestamps"),
        (  # epoch seconds read as milliseconds: rows of January 1970
            "id,timestamp,torque,line\n1,1772445600,4.5,a\n",
            {"timestamp_unit": "ms"},
            "read as epoch ms puts rows in 1970-01-21",
        ),
        ("id,timestamp,line\n1,2026-03-02,a\n", {}, "missing column 'torque'"),
        ("id,timestamp,torque,line,y_pred_proba\n1,2026-03-02,4.5,a,7\n", {}, "outside [0, 1]"),
        ("id,timestamp,torque,line\n", {}, "has no rows"),
        ("", {}, "is empty (0 bytes)"),
    ],
)
def test_a_bad_batch_is_rejected_with_its_cause(
    tmp_path: Path, text: str, read: dict[str, str], cause: str
) -> None:
    with pytest.raises(BatchRejected) as rejected:
        read_batch(write(tmp_path, "day.csv", text), model=model(**read))
    assert cause in rejected.value.message
    assert rejected.value.hint


def test_the_read_settings_make_the_same_rows_readable(tmp_path: Path) -> None:
    european = write(tmp_path, "day.csv", "id;timestamp;torque;line\n1;02/03/2026 10:00;4,5;a\n")
    settings = {"delimiter": ";", "decimal": ",", "timestamp_format": "%d/%m/%Y %H:%M"}
    table = read_batch(european, model=model(**settings))
    assert table["torque"].to_pylist() == [4.5]
    assert table["timestamp"].to_pandas()[0] == pd.Timestamp("2026-03-02T10:00:00Z")
    epochs = write(tmp_path, "epochs.csv", "id,timestamp,torque,line\n1,1772445600,4.5,a\n")
    table = read_batch(epochs, model=model(timestamp_unit="s"))
    assert table["timestamp"].to_pandas()[0] == pd.Timestamp(1772445600, unit="s", tz="UTC")


def test_a_truncated_parquet_file_says_it_may_be_half_written(tmp_path: Path) -> None:
    path = tmp_path / "day.parquet"
    pd.DataFrame({"id": ["1"]}).to_parquet(path)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(BatchRejected, match="not a readable Parquet file") as rejected:
        read_arrow(path)
    assert "half-written" in (rejected.value.hint or "")


def test_labels_are_text_ids_and_binary_targets(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "id,failure,label_time\n1,1,2026-03-09\n2,0.0,\n")
    table = read_labels(path, model=model())
    assert table["id"].to_pylist() == ["1", "2"]
    assert table["failure"].to_pylist() == [1, 0]
    assert table.schema.field("label_time").type == pa.timestamp("ns", "UTC")
    with pytest.raises(BatchRejected, match="other than 0 and 1"):
        read_labels(write(tmp_path, "bad.csv", "id,failure\n1,2\n"), model=model())


def test_the_first_label_of_each_id_and_the_later_ones_that_contradict_it() -> None:
    ids = pa.chunked_array([["a", "b", "a", "c", "b", "a"]])
    targets = pa.chunked_array([[1, 0, 1, 0, 1, 0]])
    first, contradicts = first_targets(ids, targets)
    assert first.tolist() == [True, True, False, True, False, False]
    assert contradicts.tolist() == [False, False, False, False, True, True]
    assert first_occurrences(pa.chunked_array([["x"], ["y", "x"]])).tolist() == [True, True, False]


def test_rows_get_the_chunk_of_their_period_or_their_count() -> None:
    times = pd.to_datetime(["2026-03-02T23:59:59Z", "2026-03-03T00:00:00Z", "2026-03-03T05:00:00Z"])
    rows = pd.DataFrame({"timestamp": times})
    assign_chunks(rows, "timestamp", ChunkPeriod.parse("1D"))
    days = [pd.Timestamp("2026-03-02", tz="UTC"), pd.Timestamp("2026-03-03", tz="UTC")]
    assert rows[CHUNK_COLUMN].tolist() == [chunk_ns(days[0]), chunk_ns(days[1]), chunk_ns(days[1])]
    assign_chunks(rows, "timestamp", RowChunks(2))
    first, third = (chunk_ns(t.floor("s")) for t in (times[0], times[2]))
    assert rows[CHUNK_COLUMN].tolist() == [first, first, third]

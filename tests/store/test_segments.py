"""The store's two halves together, without the services: batches and label files as the
SQL store records them, their rows and labels in Parquet segments, read back by chunk."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from perfwatch.domain.chunks import CHUNK_COLUMN, chunk_ns
from perfwatch.files import in_data_dir
from perfwatch.store import db, queries
from perfwatch.store.segments import (
    TARGET,
    labeled_rows,
    recent_rows,
    segment_path,
    stored_labels,
    write_segment,
)
from perfwatch.store.tables import Batch, BatchChunk, Label, LabelChunk, LabelFile, Model

DAY = timedelta(days=1)
START = datetime(2026, 3, 2, tzinfo=UTC)
SERVED = ["id", "timestamp", "score", "prediction"]


def rows_of(day: int, count: int) -> pd.DataFrame:
    """`count` rows of day `day`, ids d<day>-<n>, an hour apart."""
    times = [START + day * DAY + timedelta(hours=h) for h in range(count)]
    return pd.DataFrame(
        {
            "id": [f"d{day}-{n}" for n in range(count)],
            "timestamp": pd.to_datetime(times, utc=True),
            "score": [0.1 * (n % 10) for n in range(count)],
            "prediction": [n % 2 for n in range(count)],
            "torque": [40.0 + n for n in range(count)],
            CHUNK_COLUMN: chunk_ns(START + day * DAY),
        }
    )


def per_chunk(rows: pd.DataFrame) -> list[tuple[datetime, int]]:
    """(chunk start, rows) of each chunk the rows fall into."""
    counts = rows.groupby(CHUNK_COLUMN).size()
    return [(datetime.fromtimestamp(int(ns) // 10**9, UTC), int(n)) for ns, n in counts.items()]


class Store:
    """A migrated store and its data_dir, with a model."""

    def __init__(self, url: str, data_dir: Path) -> None:
        self.engine = db.open_engine(url)
        db.migrate(self.engine)
        self.data_dir = data_dir
        with db.transaction(self.engine) as session:
            model = Model(name="press")
            session.add(model)
            session.flush()
            assert model.id is not None
            self.model_id = model.id

    def add_batch(self, name: str, rows: pd.DataFrame, status: str = "ingested") -> None:
        """A batch file as ingestion records it (a quarantined one: its span, no rows)."""
        segment = segment_path(self.data_dir, "batches", "press", [name])
        with db.transaction(self.engine) as session:
            batch = Batch(
                model_id=self.model_id,
                file_name=name,
                content_hash=name,
                status=status,
                rows=len(rows),
                data_start=rows.timestamp.min().to_pydatetime(),
                data_end=rows.timestamp.max().to_pydatetime(),
            )
            session.add(batch)
            if status != "ingested":
                return
            table = pa.Table.from_pandas(rows, preserve_index=False)
            write_segment(segment, table, dictionary=[])
            batch.stored_path = in_data_dir(self.data_dir, segment)
            session.flush()
            assert batch.id is not None
            session.add_all(
                BatchChunk(
                    batch_id=batch.id,
                    model_id=self.model_id,
                    chunk_start=start,
                    chunk_end=start + DAY,
                    rows=count,
                )
                for start, count in per_chunk(rows)
            )

    def add_labels(self, name: str, rows: pd.DataFrame, targets: list[int]) -> int:
        """A label file whose labels of these rows were matched on arrival."""
        labels = rows[[*SERVED, CHUNK_COLUMN]].assign(**{TARGET: targets})
        segment = segment_path(self.data_dir, "labels", "press", [name])
        with db.transaction(self.engine) as session:
            record = LabelFile(model_id=self.model_id, file_name=name, content_hash=name)
            record.status, record.stored_path = "ingested", in_data_dir(self.data_dir, segment)
            session.add(record)
            session.flush()
            assert record.id is not None
            session.add_all(
                LabelChunk(
                    label_file_id=record.id, model_id=self.model_id, chunk_start=start, rows=count
                )
                for start, count in per_chunk(labels)
            )
        table = pa.Table.from_pandas(labels.assign(label_file_id=record.id), preserve_index=False)
        write_segment(segment, table, dictionary=[])
        return record.id


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Store:
    return Store(store_url, tmp_path / "data")


def test_row_counts_open_chunk_and_watermark_come_from_ingested_batches(store: Store) -> None:
    store.add_batch("a", pd.concat([rows_of(0, 5), rows_of(1, 3)]))
    store.add_batch("b", rows_of(1, 4))
    store.add_batch("late", rows_of(9, 2), status="quarantined")  # its rows are not stored
    with db.transaction(store.engine) as session:
        counts = queries.chunk_row_counts(session=session, model_id=store.model_id)
        recent = queries.chunk_row_counts(
            session=session, model_id=store.model_id, since=START + DAY
        )
        newest = queries.watermark(session=session, model_id=store.model_id)
        open_chunk = queries.open_chunk(session=session, model_id=store.model_id)
        in_day_0 = queries.batches_in_chunks(
            session=session, model_id=store.model_id, chunk_starts=[START]
        )
    assert counts == {START: (START + DAY, 5), START + DAY: (START + 2 * DAY, 3 + 4)}
    assert recent.keys() == {START + DAY}
    assert newest == START + DAY + timedelta(hours=3)  # the quarantined batch does not count
    assert open_chunk == (chunk_ns(START + DAY), 7)
    assert [b.file_name for b in in_day_0] == ["a"]


def test_recent_rows_reads_the_window_and_the_chunks_named_besides(store: Store) -> None:
    store.add_batch("old", rows_of(0, 3))
    store.add_batch("new", rows_of(10, 3))
    window = recent_rows(store.engine, store.data_dir, store.model_id, SERVED, window=2 * DAY)
    located = window.locate(pa.array(["d10-1", "d0-1", "nobody"])).tolist()
    assert located[0] >= 0 and located[1:] == [-1, -1]  # day 0 is outside the window
    found = window.figures(window.locate(pa.array(["d10-1"])))
    assert found.score.tolist() == [pytest.approx(0.1)]
    assert found[CHUNK_COLUMN].tolist() == [chunk_ns(START + 10 * DAY)]
    also = recent_rows(
        store.engine,
        store.data_dir,
        store.model_id,
        SERVED,
        window=2 * DAY,
        also=frozenset({START}),
    )
    assert (also.locate(pa.array(["d0-1", "d10-2"])) >= 0).all()
    everything = recent_rows(store.engine, store.data_dir, store.model_id, SERVED, window=None)
    assert everything.table is not None and everything.table.num_rows == 6
    assert everything.watermark == START + 10 * DAY + timedelta(hours=2)


def test_stored_labels_join_segments_and_labels_matched_later(store: Store) -> None:
    day0, day1 = rows_of(0, 4), rows_of(1, 4)
    store.add_batch("a", pd.concat([day0, day1]))
    file_id = store.add_labels("labels-a", day0.iloc[:3], [1, 0, 1])
    # d0-0 sent again a day later: stored in day 1 too, labeled in day 0 only
    retried = day1.iloc[:1].assign(id="d0-0", torque=99.0)
    store.add_batch("b", retried)
    with db.transaction(store.engine) as session:  # d1-2 was held, then its row came
        later = day1.iloc[2]
        session.add(
            Label(
                model_id=store.model_id,
                label_file_id=file_id,
                row_id=later["id"],
                target=1,
                chunk_start=START + DAY,
                row_time=later["timestamp"].to_pydatetime(),
                score=later["score"],
                prediction=int(later["prediction"]),
            )
        )
    both_days = [START, START + DAY]
    labels = stored_labels(store.engine, store.data_dir, store.model_id, both_days, SERVED)
    assert dict(zip(labels["id"], labels[TARGET], strict=True)) == {
        "d0-0": 1,
        "d0-1": 0,
        "d0-2": 1,
        "d1-2": 1,
    }
    assert labels.set_index("id").loc["d1-2", "timestamp"] == later["timestamp"]
    only_day0 = stored_labels(store.engine, store.data_dir, store.model_id, [START], SERVED)
    assert sorted(only_day0["id"]) == ["d0-0", "d0-1", "d0-2"]

    labeled = labeled_rows(
        store.engine, store.data_dir, store.model_id, both_days, SERVED, ["torque"]
    )
    assert sorted(labeled["id"]) == ["d0-0", "d0-1", "d0-2", "d1-2"], "not the retry"
    assert labeled.set_index("id").loc["d1-2", "torque"] == later["torque"]
    assert labeled.set_index("id").loc["d0-0", "torque"] == day0["torque"].iloc[0]
    assert set(labeled.columns) == {"id", "torque", CHUNK_COLUMN, TARGET}
    assert dict(zip(labeled["id"], labeled[TARGET], strict=True)) == dict(
        zip(labels["id"], labels[TARGET], strict=True)
    ), "each row with its own label"


def test_nothing_stored_reads_as_empty(store: Store) -> None:
    assert (
        recent_rows(store.engine, store.data_dir, store.model_id, SERVED, window=None).table is None
    )
    labels = stored_labels(store.engine, store.data_dir, store.model_id, [START], SERVED)
    assert labels.empty and list(labels.columns) == ["id", TARGET, CHUNK_COLUMN, *SERVED[1:]]

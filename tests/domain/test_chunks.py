from datetime import UTC, datetime, timedelta

import pytest

from perfwatch.domain.chunks import ChunkPeriod, RowChunks, chunk_end, is_complete
from perfwatch.domain.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("1D", timedelta(days=1)),
        ("D", timedelta(days=1)),
        ("6h", timedelta(hours=6)),
        ("2W", timedelta(weeks=2)),
        ("30min", timedelta(minutes=30)),
        ("15m", timedelta(minutes=15)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_durations_parse(text: str, length: timedelta) -> None:
    assert parse_duration(text) == length


@pytest.mark.parametrize("text", ["", "1M", "1Y", "0D", "-1D", "one day", "1.5h"])
def test_durations_reject_variable_or_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_daily_chunks_start_at_midnight_utc() -> None:
    period = ChunkPeriod.parse("1D")
    moment = datetime(2026, 3, 4, 17, 45, tzinfo=UTC)
    assert period.start_of(moment) == datetime(2026, 3, 4, tzinfo=UTC)
    assert period.end_of(period.start_of(moment)) == datetime(2026, 3, 5, tzinfo=UTC)


def test_weekly_chunks_start_on_monday() -> None:
    start = ChunkPeriod.parse("1W").start_of(datetime(2026, 3, 5, 12, tzinfo=UTC))  # Thursday
    assert start == datetime(2026, 3, 2, tzinfo=UTC) and start.weekday() == 0


def test_chunk_boundaries_do_not_depend_on_the_first_row() -> None:
    period = ChunkPeriod.parse("6h")
    a = period.start_of(datetime(2026, 3, 4, 7, 1, tzinfo=UTC))
    b = period.start_of(datetime(2026, 3, 4, 11, 59, tzinfo=UTC))
    assert a == b == datetime(2026, 3, 4, 6, tzinfo=UTC)


def test_origin_in_ns_matches_datetime_arithmetic() -> None:
    period = ChunkPeriod.parse("1D")
    moment = datetime(2026, 3, 4, 17, 45, tzinfo=UTC)
    ns = int(moment.timestamp()) * 10**9
    start_ns = (ns - period.origin_ns) // period.length_ns * period.length_ns + period.origin_ns
    assert start_ns == int(period.start_of(moment).timestamp()) * 10**9


def test_a_chunk_is_complete_once_data_time_reaches_its_end() -> None:
    end = datetime(2026, 3, 5, tzinfo=UTC)
    assert not is_complete(end, None)
    assert not is_complete(end, end - timedelta(seconds=1))
    assert is_complete(end, end)


def test_durations_are_written_back_in_their_largest_whole_unit() -> None:
    from datetime import timedelta

    from perfwatch.domain.durations import format_duration, parse_duration

    for text in ("1D", "6h", "30min", "2W", "45s"):
        assert format_duration(parse_duration(text)) == text
    assert format_duration(timedelta(hours=48)) == "2D"


def test_row_chunk_starts_are_the_first_rows_second_and_strictly_increasing() -> None:
    from perfwatch.domain.chunks import SECOND_NS, row_chunk_starts

    second = SECOND_NS
    firsts = [10 * second + 5, 10 * second + 9, 12 * second, 11 * second]
    assert row_chunk_starts(firsts, None) == [10 * second, 11 * second, 12 * second, 13 * second]
    assert row_chunk_starts([3 * second], 3 * second) == [4 * second]


def test_a_chunk_ends_with_its_period_or_a_second_after_its_last_row() -> None:
    start = datetime(2026, 3, 2, tzinfo=UTC)
    last = start + timedelta(hours=5, seconds=7, microseconds=900)
    last_ns = int(last.timestamp()) * 1_000_000_000 + 900_000
    assert chunk_end(ChunkPeriod.parse("1D"), start, last_ns) == start + timedelta(days=1)
    assert chunk_end(RowChunks(100), start, last_ns) == start + timedelta(hours=5, seconds=8)

"""The fleet simulator's promises: seeded, AI4I-like, and each scenario changes what it says."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from perfwatch.simulate.files import HARD_DEFECTS, SOFT_DEFECTS, drop_arrived_labels, drop_day
from perfwatch.simulate.fleet import FEATURES, TARGET, label_arrivals, simulate_days

START = datetime(2026, 3, 2, tzinfo=UTC)


def fleet(scenario: str = "stable", seed: int = 1, days: int = 20) -> pd.DataFrame:
    return simulate_days(
        start=START,
        days=days,
        runs_per_day=1000,
        machines=10,
        seed=seed,
        scenario=scenario,
        shift_day=10,
    )


def test_the_same_seed_gives_the_same_fleet() -> None:
    pd.testing.assert_frame_equal(fleet(seed=3), fleet(seed=3))
    assert not fleet(seed=3)[FEATURES].equals(fleet(seed=4)[FEATURES])


def test_ai4i_ranges_and_a_few_percent_failures() -> None:
    rows = fleet()
    assert set(rows.product_type) == {"L", "M", "H"}
    assert rows.product_type.value_counts(normalize=True)["L"] > 0.45
    assert 295 < rows.air_temp.mean() < 305
    assert 9 < (rows.process_temp - rows.air_temp).mean() < 11
    assert rows.torque.min() >= 0 and 35 < rows.torque.mean() < 45
    assert rows.tool_wear.max() < 260
    assert 0.02 < rows[TARGET].mean() < 0.08
    assert rows.timestamp.min() >= START and rows.id.is_unique


def test_covariate_shift_moves_tool_wear_up_after_the_shift_day_only() -> None:
    stable, shifted = fleet(), fleet("covariate_shift")
    before = shifted.timestamp < pd.Timestamp(START) + pd.Timedelta(days=10)
    pd.testing.assert_frame_equal(stable[before], shifted[before])
    high = lambda rows: (rows.tool_wear > 180).mean()  # noqa: E731
    assert high(shifted[~before]) > 2 * high(stable[~before])


def test_a_heat_wave_warms_air_and_process_after_the_shift_day_only() -> None:
    stable, hot = fleet(), fleet("heat_wave")
    before = hot.timestamp < pd.Timestamp(START) + pd.Timedelta(days=10)
    pd.testing.assert_frame_equal(stable[before], hot[before])
    ramped = hot.timestamp >= pd.Timestamp(START) + pd.Timedelta(days=14)
    warmer = (
        hot[ramped][["air_temp", "process_temp"]].mean()
        - stable[ramped][["air_temp", "process_temp"]].mean()
    )
    assert 9.5 < warmer["air_temp"] < 10.5
    assert 0.3 < warmer["air_temp"] - warmer["process_temp"] < 0.7  # the cooling holds
    assert (hot[ramped][TARGET].mean()) > stable[ramped][TARGET].mean()  # more heat failures


def test_dirty_days_drop_broken_and_soft_defective_files(tmp_path: Path) -> None:
    rows = fleet(days=1)
    day = START.date()
    names = set()
    for index in sorted({*HARD_DEFECTS, *SOFT_DEFECTS, 1}):
        names |= {
            p.name for p in drop_day(rows, index, day, tmp_path / str(index), defects=True, seed=0)
        }
    assert {f"{day}-{name}" for name, _ in HARD_DEFECTS.values()} <= {
        n.rsplit(".", 1)[0] for n in names
    }
    assert f"{day}-resent.parquet" in names
    clean = drop_day(rows, 0, day, tmp_path / "clean", defects=False, seed=0)
    assert [p.name for p in clean] == [f"{day}.parquet"]


def test_a_failure_is_known_the_same_day_and_no_failure_after_the_horizon(
    tmp_path: Path,
) -> None:
    rows = fleet(days=12)
    arrivals = label_arrivals(rows, horizon=timedelta(days=7), seed=1)
    assert arrivals["id"].tolist() == rows["id"].tolist()
    failed = arrivals[TARGET] == 1
    waited = arrivals["label_time"] - rows["timestamp"]
    assert (waited[failed] >= pd.Timedelta(0)).all()
    assert (arrivals["label_time"][failed].dt.date == rows["timestamp"][failed].dt.date).all()
    assert (waited[~failed] == pd.Timedelta(days=7)).all()
    assert waited[failed].std() > pd.Timedelta(hours=1), "reported at various times"

    day = (START + timedelta(days=8)).date()
    log = drop_arrived_labels(arrivals, day, tmp_path)
    assert log is not None and log.name == f"labels-{day:%Y-%m-%d}.parquet"
    dropped = pd.read_parquet(log).merge(rows[["id", "timestamp"]], on="id")
    run_days = dropped["timestamp"].dt.date
    assert set(run_days[dropped[TARGET] == 1]) == {day}, "the day's own failures"
    assert set(run_days[dropped[TARGET] == 0]) == {(START + timedelta(days=1)).date()}, (
        "the healthy runs of a week ago"
    )
    assert drop_arrived_labels(arrivals, (START + timedelta(days=40)).date(), tmp_path) is None

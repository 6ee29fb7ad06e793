"""Writing the simulated fleet as the files a real deployment drops into an inbox.

Producers write to a hidden name and rename, as DESIGN.md asks. The `dirty` scenario's
defects are real broken files, so the demo and the tests exercise real ingestion.
"""

import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd


def write_frame(frame: pd.DataFrame, path: Path) -> Path:
    """Write Parquet or CSV (by suffix) under a hidden name, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    hidden = path.with_name("." + path.name)
    if path.suffix == ".csv":
        frame.to_csv(hidden, index=False)
    else:
        frame.to_parquet(hidden, index=False)
    hidden.replace(path)
    return path


def _text_in_numeric(rows: pd.DataFrame, path: Path) -> None:
    broken = rows.astype({"torque": object})
    broken.loc[broken.index[::7], "torque"] = "ERR:overload"  # a PLC error text
    write_frame(broken, path.with_suffix(".csv"))


def _truncated(rows: pd.DataFrame, path: Path) -> None:
    whole = write_frame(rows, path.with_name("." + path.name + ".whole"))
    payload = whole.read_bytes()
    whole.unlink()
    hidden = path.with_name("." + path.name)
    hidden.write_bytes(payload[: len(payload) // 2])
    hidden.replace(path)


def _missing_column(rows: pd.DataFrame, path: Path) -> None:
    write_frame(rows.drop(columns=["torque"]), path)


def _empty(rows: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".csv").touch()


# Hard defects: a slice of the day's rows in a broken file (quarantined with a reason).
HARD_DEFECTS: dict[int, tuple[str, Callable[[pd.DataFrame, Path], None]]] = {
    2: ("text-in-numeric", _text_in_numeric),
    4: ("truncated", _truncated),
    6: ("missing-column", _missing_column),
    8: ("empty", _empty),
}


def _stuck_sensor(rows: pd.DataFrame, rng: np.random.Generator) -> None:
    machine = rows["machine_id"].iloc[0]
    rows.loc[rows["machine_id"] == machine, "rpm"] = 0.0


def _nulls(rows: pd.DataFrame, rng: np.random.Generator) -> None:
    rows.loc[rng.random(len(rows)) < 0.03, "air_temp"] = np.nan


def _unseen_variant(rows: pd.DataFrame, rng: np.random.Generator) -> None:
    rows.loc[rng.random(len(rows)) < 0.01, "product_type"] = "X"


# Soft defects: the day's own file carries them; rows are kept, findings counted.
SOFT_DEFECTS: dict[int, Callable[[pd.DataFrame, np.random.Generator], None]] = {
    3: _stuck_sensor,
    5: _nulls,
    7: _unseen_variant,
}


def drop_day(
    rows: pd.DataFrame, day_index: int, day: date, inbox: Path, *, defects: bool, seed: int
) -> list[Path]:
    """Drop one day of production into the inbox; with defects, some days carry a broken one."""
    rng = np.random.default_rng(seed + day_index)
    rows = rows.copy()
    written = []
    if defects and day_index in HARD_DEFECTS:
        name, write = HARD_DEFECTS[day_index]
        broken, rows = rows.iloc[::20], rows.drop(rows.index[::20])
        write(broken, inbox / f"{day:%Y-%m-%d}-{name}.parquet")
        written += sorted(inbox.glob(f"{day:%Y-%m-%d}-{name}.*"))
    if defects and day_index in SOFT_DEFECTS:
        SOFT_DEFECTS[day_index](rows, rng)
    written.append(write_frame(rows, inbox / f"{day:%Y-%m-%d}.parquet"))
    if defects and day_index == 1:  # the same file dropped twice, under another name
        copy = inbox / f"{day:%Y-%m-%d}-resent.parquet"
        shutil.copyfile(written[-1], copy)
        written.append(copy)
    return written


def drop_labels(rows: pd.DataFrame, day: date, labels_inbox: Path, *, delay: int) -> Path:
    """The old way, for tests that need every label of a day at once: the maintenance log
    of one production day, `delay` days after each run (id, failure, label time)."""
    labels = pd.DataFrame(
        {
            "id": rows["id"],
            "failure": rows["failure"],
            "label_time": rows["timestamp"] + pd.Timedelta(days=delay),
        }
    )
    return write_frame(labels, labels_inbox / f"labels-{day:%Y-%m-%d}.parquet")


def drop_arrived_labels(arrivals: pd.DataFrame, day: date, labels_inbox: Path) -> Path | None:
    """The maintenance log of one day: the labels that became known that day (see
    fleet.label_arrivals), whichever day their runs were on; None when there were none."""
    arrived = arrivals[arrivals["label_time"].dt.date == day]
    if arrived.empty:
        return None
    return write_frame(arrived, labels_inbox / f"labels-{day:%Y-%m-%d}.parquet")

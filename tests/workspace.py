"""A small, real deployment for tests: simulated fleet files, a trained model, a config."""

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from perfwatch.config import Settings, load_settings
from perfwatch.ml.training import train
from perfwatch.simulate.files import write_frame
from perfwatch.simulate.fleet import CATEGORICAL, FEATURES, TARGET, simulate_days
from perfwatch.store import db

RUNS_PER_DAY = 800
PRODUCTION_START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
HISTORY_DAYS, REFERENCE_DAYS = 30, 10

CONFIG = """\
store = "{store}"
data_dir = "var"

[[models]]
name = "press"
target = "failure"
features = {features}
categorical = ["product_type"]
metrics = ["roc_auc", "f1", "recall"]
inbox = "inbox"
labels_inbox = "labels"
initial_model = "artifacts/model.joblib"
reference = "artifacts/reference.parquet"
training_data = "artifacts/train.parquet"
{extra}
"""


def build_artifacts(folder: Path) -> Path:
    history = simulate_days(
        start=PRODUCTION_START - timedelta(days=HISTORY_DAYS),
        days=HISTORY_DAYS,
        runs_per_day=RUNS_PER_DAY,
        machines=10,
        seed=11,
        id_prefix="hist",
    )
    split = PRODUCTION_START - timedelta(days=REFERENCE_DAYS)
    training = history[history.timestamp < split]
    write_frame(training, folder / "train.parquet")
    write_frame(history[history.timestamp >= split], folder / "reference.parquet")
    model = train(training, features=FEATURES, categorical=CATEGORICAL, target=TARGET)
    joblib.dump(model, folder / "model.joblib")
    return folder


def production(
    days: int,
    *,
    scenario: str = "stable",
    seed: int = 5,
    start_day: int = 0,
    shift_day: int | None = None,
    runs_per_day: int = RUNS_PER_DAY,
) -> pd.DataFrame:
    """Simulated production rows, `days` days from PRODUCTION_START (+ start_day)."""
    return simulate_days(
        start=PRODUCTION_START + timedelta(days=start_day),
        days=days,
        runs_per_day=runs_per_day,
        machines=10,
        seed=seed,
        scenario=scenario,
        shift_day=shift_day,
        id_prefix=f"prod{start_day}",
    )


@dataclass
class Workspace:
    root: Path
    config: Path
    store: str

    @classmethod
    def create(cls, root: Path, artifacts: Path, store: str, extra: str = "") -> "Workspace":
        shutil.copytree(artifacts, root / "artifacts")
        config = root / "perfwatch.toml"
        features = "[" + ", ".join(f'"{f}"' for f in FEATURES) + "]"
        config.write_text(CONFIG.format(store=store, features=features, extra=extra))
        return cls(root=root, config=config, store=store)

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def labels(self) -> Path:
        return self.root / "labels"

    def drop_labels(self, frame: pd.DataFrame, name: str) -> Path:
        """A label file: the rows' id and target (and any other columns given)."""
        return write_frame(frame, self.labels / name)

    def settings(self) -> Settings:
        return load_settings(self.config, environ={})

    def engine(self) -> Any:
        engine = db.open_engine(self.settings().store)
        db.migrate(engine)
        return engine

    def drop(self, frame: pd.DataFrame, name: str) -> Path:
        return write_frame(frame, self.inbox / name)

    def drop_days(self, frame: pd.DataFrame, fmt: str = "parquet") -> list[Path]:
        return [
            self.drop(rows, f"{day:%Y-%m-%d}.{fmt}")
            for day, rows in frame.groupby(frame.timestamp.dt.date)
        ]


def placeholder_version(model_id: int | None) -> Any:
    """A champion version row with no files behind it: for tests that write figures
    straight into the store."""
    from perfwatch.store.tables import ModelVersion

    paths = ("artifact", "reference", "estimator")
    return ModelVersion(
        model_id=model_id,
        version=1,
        status="champion",
        source="test",
        contract="[]",
        **{f"{p}_path": "-" for p in paths},
        **{f"{p}_sha256": "-" for p in paths},
    )

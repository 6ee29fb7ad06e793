"""A fleet's daily cycle (issue 16): N models x R rows a day, one day's cycle for all of
them with the local executor and on a Dask LocalCluster of 1 and of 2 worker processes,
in the same run, each on a PostgreSQL schema of its own.

    ./dev bench-fleet                      # 200 models x 10,000 rows (PostgreSQL needed)
    ./dev bench-fleet --models 40 --rows 2000

Each setup first takes in day 1 (registering every model's version 1: not timed), then
day 2 is dropped into every inbox and one cycle of every model is timed: the steady
daily cycle. Prints models per minute, the wall time per model, the scaling from 1 to 2
workers (goal >= 1.7x) and what 1,000 models' daily cycle needs at that cost.
"""

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

STORE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
START = datetime(2026, 3, 2, tzinfo=UTC)
GOAL_MODELS, GOAL_SECONDS = 1_000, 15 * 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--rows", type=int, default=10_000, help="rows a model gets a day")
    parser.add_argument(
        "--store", default=os.environ.get("PERFWATCH_TEST_POSTGRES", STORE), help="PostgreSQL"
    )
    args = parser.parse_args()
    import logging

    logging.getLogger("perfwatch").setLevel(logging.ERROR)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="perfwatch-fleet-") as temporary:
        root = Path(temporary)
        artifacts, days = _artifacts(root / "artifacts", args.rows)
        timed = {}
        for setup, workers in (("local", 0), ("dask, 1 worker", 1), ("dask, 2 workers", 2)):
            with _schema(args.store) as store:
                folder = root / setup.replace(", ", "-").replace(" ", "")
                first, seconds, scrape = _daily_cycle(
                    folder, store, artifacts, days, args.models, workers
                )
            timed[setup] = seconds
            print(
                f"{setup:<16}: {args.models} models' daily cycle in {seconds:6.1f} s ·"
                f" {args.models / seconds * 60:6.1f} models/min ·"
                f" {seconds / args.models:.3f} s per model"
                f" (first day, registering: {first:.1f} s) · a Prometheus scrape {scrape:.2f} s",
                flush=True,
            )
    _summary(timed, args.models)
    return 0


def _summary(timed: dict[str, float], models: int) -> None:
    scaling = timed["dask, 1 worker"] / timed["dask, 2 workers"]
    print(f"scaling from 1 to 2 workers: {scaling:.2f}x (goal >= 1.7x)")
    one = timed["dask, 1 worker"] / models  # a worker's seconds per model
    best = min(timed.values()) / models
    print(
        f"1,000 models at {best:.3f} s each (best setup here): {GOAL_MODELS * best:.0f} s"
        f" ({'inside' if GOAL_MODELS * best <= GOAL_SECONDS else 'outside'} a 15-minute interval)"
    )
    for cores in (2, 16, 64):  # 64: a 4-node cluster of 16-core hosts
        needed = GOAL_MODELS * one / cores
        print(f"  {cores:>2} worker processes at {one:.3f} s a model: {needed:.0f} s")


def _daily_cycle(
    folder: Path, store: str, artifacts: Path, days: list[Any], models: int, workers: int
) -> tuple[float, float, float]:
    """Day 1 taken in (registering every version 1), then the cycle of every model over
    day 2 (the steady daily cycle), then a Prometheus scrape of them all: seconds each."""
    from perfwatch.config import load_settings
    from perfwatch.executor import DaskExecutor, LocalExecutor
    from perfwatch.simulate.files import write_frame
    from perfwatch.store import db

    config = _config(folder, store, artifacts, models, workers)
    names = [f"m{i:04d}" for i in range(models)]
    with _cluster(workers) as address:
        environ = {"PERFWATCH_DASK_ADDRESS": address} if address else {}
        settings = load_settings(config, environ=environ)
        engine = db.open_engine(settings.store)
        db.migrate(engine)
        executor: Any = LocalExecutor(engine, settings)
        if address:
            from distributed import Client

            executor = DaskExecutor(engine, settings, Client(address))
        try:
            seconds = []
            for day, rows in enumerate(days):
                for name in names:
                    write_frame(
                        rows.assign(id=name + rows.id), folder / "inbox" / name / f"{day}.parquet"
                    )
                started = time.perf_counter()
                reports = executor.cycles(names)
                seconds.append(time.perf_counter() - started)
                failed = [r for r in reports if r.status != "ok"]
                if failed:
                    raise SystemExit(f"{failed[0].model}: {failed[0].error}")
            seconds.append(_scrape(engine, names))
        finally:
            executor.close()
            engine.dispose()
    first, daily, scrape = seconds
    return first, daily, scrape


def _scrape(engine: Any, names: list[str]) -> float:
    """Seconds to collect every metric the Prometheus endpoint serves."""
    from perfwatch.services.exporter import StoreCollector

    started = time.perf_counter()
    families = list(StoreCollector(engine, names).collect())
    assert sum(len(f.samples) for f in families) >= len(names)
    return time.perf_counter() - started


@contextmanager
def _cluster(workers: int) -> Iterator[str | None]:
    if not workers:
        yield None
        return
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


@contextmanager
def _schema(url: str) -> Iterator[str]:
    """A schema of its own on the PostgreSQL server, dropped at the end."""
    from sqlalchemy import create_engine, text

    schema = f"pw_fleet_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        separator = "&" if "?" in url else "?"
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _config(folder: Path, store: str, artifacts: Path, models: int, workers: int) -> Path:
    from perfwatch.simulate.fleet import CATEGORICAL, FEATURES

    features = ", ".join(f'"{f}"' for f in FEATURES)
    categorical = ", ".join(f'"{f}"' for f in CATEGORICAL)
    blocks = [
        f'[[models]]\nname = "m{i:04d}"\ntarget = "failure"\nfeatures = [{features}]\n'
        f'categorical = [{categorical}]\ninbox = "inbox/m{i:04d}"\n'
        f'initial_model = "{artifacts}/model.joblib"\nreference = "{artifacts}/reference.parquet"\n'
        for i in range(models)
    ]
    executor = '[executor]\nkind = "dask"\n' if workers else ""
    folder.mkdir(parents=True)
    config = folder / "perfwatch.toml"
    config.write_text(f'store = "{store}"\ndata_dir = "var"\n{executor}\n' + "\n".join(blocks))
    return config


def _artifacts(folder: Path, rows: int) -> tuple[Path, list[Any]]:
    """The model every line serves (trained once), its reference, and two production days."""
    import joblib

    from perfwatch.ml.training import train
    from perfwatch.simulate.files import write_frame
    from perfwatch.simulate.fleet import CATEGORICAL, FEATURES, TARGET, simulate_days

    def days(start: datetime, count: int, seed: int) -> Any:
        return simulate_days(
            start=start, days=count, runs_per_day=rows, machines=20, seed=seed, id_prefix="r"
        )

    history = days(START - timedelta(days=20), 20, seed=1)
    split = START - timedelta(days=7)
    write_frame(history[history.timestamp >= split], folder / "reference.parquet")
    model = train(
        history[history.timestamp < split],
        features=FEATURES,
        categorical=CATEGORICAL,
        target=TARGET,
    )
    joblib.dump(model, folder / "model.joblib")
    production = days(START, 2, seed=2).drop(columns=[TARGET])
    return folder, [rows for _, rows in production.groupby(production.timestamp.dt.date)]


if __name__ == "__main__":
    sys.exit(main())

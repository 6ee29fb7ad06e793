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
                first, seconds = _daily_cycle(folder, store, artifacts, days, args.models, workers)
                timed[setup] = seconds
                print(
                    f"{setup:<16}: {args.models} models' daily cycle in {seconds:6.1f} s ·"
                    f" {args.models / seconds * 60:6.1f} models/min ·"
                    f" {seconds / args.models:.3f} s per model"
                    f" (the first day, registering every version 1: {first:.1f} s)",
                    flush=True,
                )
                if not workers:
                    _scrape_at_scale(store, GOAL_MODELS)
    _summary(timed, args.models)
    return 0


def _summary(timed: dict[str, float], models: int) -> None:
    scaling = timed["dask, 1 worker"] / timed["dask, 2 workers"]
    print(f"scaling from 1 to 2 workers: {scaling:.2f}x (goal >= 1.7x)")
    overhead = (timed["dask, 1 worker"] - timed["local"]) / models
    print(f"a task's overhead (1 worker against the local executor): {overhead:.3f} s a model")
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
) -> tuple[float, float]:
    """Day 1 taken in (registering every version 1), then the cycle of every model over
    day 2 (the steady daily cycle): seconds each."""
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
                started, cpu = time.perf_counter(), _cpu_seconds()
                reports = executor.cycles(names)
                seconds.append(time.perf_counter() - started)
                used = {k: v - cpu.get(k, 0.0) for k, v in _cpu_seconds().items()}
                failed = [r for r in reports if r.status != "ok"]
                if failed:
                    raise SystemExit(f"{failed[0].model}: {failed[0].error}")
        finally:
            executor.close()
            engine.dispose()
    busy = ", ".join(f"{k} {v:.1f} s" for k, v in used.items())
    print(f"  CPU in the daily cycle: {busy}; {sum(used.values()) / seconds[-1]:.2f} cores busy")
    first, daily = seconds
    return first, daily


def _cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of this process (the executor's client, a LocalCluster's
    scheduler), of its children (the Dask workers) and of the PostgreSQL server."""
    import psutil

    def spent(process: Any) -> float:
        try:
            times = process.cpu_times()
        except psutil.Error:  # ended meanwhile
            return 0.0
        return float(times.user + times.system)

    me = psutil.Process()
    server = [
        p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("postgres")
    ]
    return {
        "this process": spent(me),
        "workers": sum(spent(child) for child in me.children(recursive=True)),
        "PostgreSQL": sum(spent(p) for p in server),
    }


def _scrape_at_scale(store: str, models: int) -> None:
    """The store's models cloned (every row of theirs but the labels) up to `models`,
    then a Prometheus scrape of them all timed, and `status` of them all for comparison
    (the endpoint read them so, model by model, before store.fleet_reads)."""
    from perfwatch.services.exporter import StoreCollector
    from perfwatch.services.status import model_status
    from perfwatch.store import db

    engine = db.open_engine(store)
    try:
        names = _clone_models(engine, models)
        started = time.perf_counter()
        families = list(StoreCollector(engine, names).collect())
        scrape = time.perf_counter() - started
        assert sum(len(f.samples) for f in families) >= len(names)
        started = time.perf_counter()
        model_status(engine, names)
        status = time.perf_counter() - started
    finally:
        engine.dispose()
    print(
        f"a Prometheus scrape of {len(names)} models: {scrape:.2f} s"
        f" (every model's status, model by model: {status:.2f} s)",
        flush=True,
    )


def _clone_models(engine: Any, models: int) -> list[str]:
    """Copies of the stored models (rows and all, labels aside) up to `models`; every
    model's name."""
    from sqlalchemy import UniqueConstraint, insert, literal, select
    from sqlmodel import SQLModel

    import perfwatch.store.tables  # noqa: F401 (the tables, in SQLModel's metadata)

    def keyed_by_model(table: Any) -> bool:  # no unique key a copy would repeat
        unique = [c.columns for c in table.constraints if isinstance(c, UniqueConstraint)]
        unique += [i.columns for i in table.indexes if i.unique]
        return all("model_id" in columns for columns in unique)

    tables = SQLModel.metadata.tables
    owned = [
        t for t in tables.values() if "model_id" in t.c and t.name != "label" and keyed_by_model(t)
    ]

    def copied(table: Any) -> list[Any]:  # every column but an own integer key
        own_key = (
            [c for c in table.primary_key.columns] if len(table.primary_key.columns) == 1 else []
        )
        return [c for c in table.c if c not in own_key and c.name != "model_id"]

    model = tables["model"]
    with engine.begin() as connection:
        stored = connection.execute(select(model.c.id, model.c.name)).all()
        for i in range(models - len(stored)):
            source_id, source_name = stored[i % len(stored)]
            others = [c for c in copied(model) if c.name != "name"]
            new_id = connection.execute(
                insert(model)
                .from_select(
                    ["name", *(c.name for c in others)],
                    select(literal(f"{source_name}-copy{i:04d}"), *others).where(
                        model.c.id == source_id
                    ),
                )
                .returning(model.c.id)
            ).scalar_one()
            for table in owned:
                columns = copied(table)
                connection.execute(
                    insert(table).from_select(
                        [*(c.name for c in columns), "model_id"],
                        select(*columns, literal(new_id)).where(table.c.model_id == source_id),
                    )
                )
        return list(connection.execute(select(model.c.name).order_by(model.c.id)).scalars())


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

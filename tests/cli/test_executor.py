"""`[executor] kind = "dask"`: cycles of many models as tasks on a Dask cluster (a
LocalCluster of worker processes) writing to PostgreSQL, through the real CLI."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from perfwatch.config import load_settings
from perfwatch.services.status import history, model_status
from perfwatch.simulate.files import write_frame
from perfwatch.simulate.fleet import FEATURES, TARGET
from perfwatch.store import db
from perfwatch.store.db import transaction
from perfwatch.store.tables import Batch, Model
from tests.cli.test_cli import perfwatch
from tests.conftest import NO_POSTGRES, POSTGRES, _postgres_schema
from tests.workspace import production

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not POSTGRES, reason=NO_POSTGRES)]

MODELS = 20
DASK = '[executor]\nkind = "dask"'
MODEL = """
[[models]]
name = "line{i:02d}"
target = "failure"
features = {features}
categorical = ["product_type"]
metrics = ["roc_auc", "f1", "recall"]
inbox = "inbox/line{i:02d}"
labels_inbox = "labels/line{i:02d}"
initial_model = "{artifacts}/model.joblib"
reference = "{artifacts}/reference.parquet"
training_data = "{artifacts}/train.parquet"
"""


@pytest.fixture
def postgres() -> Iterator[str]:
    assert POSTGRES is not None
    yield from _postgres_schema(POSTGRES)


@pytest.fixture
def other_postgres() -> Iterator[str]:
    assert POSTGRES is not None
    yield from _postgres_schema(POSTGRES)


def cluster(env: dict[str, str] | None = None) -> Any:
    """Two worker processes of one thread, their environment this one's plus `env`."""
    from distributed import LocalCluster

    saved = dict(os.environ)
    os.environ.update(env or {})
    try:  # the worker processes inherit the environment they are started with
        return LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
    finally:
        os.environ.clear()
        os.environ.update(saved)


def address_of(workers: Any) -> dict[str, str]:
    return {"PERFWATCH_DASK_ADDRESS": workers.scheduler_address}


def fleet_folder(
    folder: Path, store: str, artifacts: Path, executor: str = "", models: int = MODELS
) -> Path:
    """A deployment of `models` models (the same trained model), each with a few days of
    its own production rows and the labels of the first day."""
    features = "[" + ", ".join(f'"{f}"' for f in FEATURES) + "]"
    blocks = "".join(
        MODEL.format(i=i, features=features, artifacts=artifacts) for i in range(models)
    )
    config = folder / "perfwatch.toml"
    folder.mkdir(parents=True)
    config.write_text(f'store = "{store}"\ndata_dir = "var"\n{executor}\n{blocks}')
    for i in range(models):
        scenario = "covariate_shift" if i % 2 else "stable"
        rows = production(3, scenario=scenario, shift_day=1, seed=100 + i, runs_per_day=300)
        for day, batch in rows.groupby(rows.timestamp.dt.date):
            write_frame(batch.drop(columns=[TARGET]), folder / f"inbox/line{i:02d}/{day}.parquet")
        first = rows[rows.timestamp.dt.date == rows.timestamp.dt.date.min()]
        write_frame(first[["id", TARGET]], folder / f"labels/line{i:02d}/labels.parquet")
    return config


def figures(config: Path) -> dict[str, Any]:
    """Every model's history, open alerts and newest complete estimate, and the rows and
    files recorded."""
    settings = load_settings(config, environ={})
    engine = db.open_engine(settings.store)
    found = {}
    for model in settings.models:
        status = model_status(engine, [model.name])[0]
        found[model.name] = {
            "history": history(engine, model.name),
            "alerts": sorted((a["kind"], a["subject"]) for a in status["alerts"]),
            "estimate": status["latest_complete_estimate"],
        }
    with transaction(engine) as session:
        recorded = select(Model.name, Batch.file_name, Batch.status, Batch.rows).join(
            Model, Model.id == Batch.model_id
        )
        found["batches"] = sorted(map(tuple, session.exec(recorded).all()))
    engine.dispose()
    return found


def test_twenty_models_on_a_cluster_equal_the_local_executor_figure_for_figure(
    tmp_path: Path, artifacts: Path, postgres: str, other_postgres: str
) -> None:
    local = fleet_folder(tmp_path / "local", other_postgres, artifacts)
    assert perfwatch("run", "--once", config=local).returncode == 0
    with cluster() as workers:
        config = fleet_folder(tmp_path / "dask", postgres, artifacts, executor=DASK)
        run = perfwatch(
            "run",
            "--once",
            config=config,
            env={"PERFWATCH_DASK_ADDRESS": workers.scheduler_address},
        )
    assert run.returncode == 0, run.stderr
    assert run.stdout.count(": ok · 3 batch(es), 900 rows · 300 label(s)") == MODELS
    assert figures(config) == figures(local)
    screen = perfwatch("status", config=config).stdout  # a fleet: one table
    assert f"{MODELS} models" in screen and len(screen.splitlines()) < 2 * MODELS
    assert all(screen.count(f"line{i:02d} ") == 1 for i in range(MODELS))
    assert "roc_auc" in screen or "recall" in screen or "f1" in screen, "the worst metric"


def test_a_worker_killed_mid_cycle_loses_nothing_and_counts_nothing_twice(
    tmp_path: Path, artifacts: Path, postgres: str, other_postgres: str
) -> None:
    """A worker dies (SIGKILL) after a cycle committed its batches and before it moved
    their files; Dask runs the task again on another worker, which finds them recorded."""
    local = fleet_folder(tmp_path / "local", other_postgres, artifacts, models=4)
    assert perfwatch("run", "--once", "--no-retrain", config=local).returncode == 0
    fired = tmp_path / "fired-"
    faults = {"PERFWATCH_FAULTS": "kill@moving batch files", "PERFWATCH_FAULTS_ONCE": str(fired)}
    with cluster(faults) as workers:
        config = fleet_folder(tmp_path / "dask", postgres, artifacts, executor=DASK, models=4)
        address = {"PERFWATCH_DASK_ADDRESS": workers.scheduler_address}
        run = perfwatch("run", "--once", "--no-retrain", config=config, env=address)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "fired-moving-batch-files").exists(), "a worker was killed"
    assert run.stdout.count(": ok · ") == 4
    assert figures(config) == figures(local)
    assert not list((tmp_path / "dask" / "inbox").glob("*/*.parquet")), "every file moved"


def test_a_worker_that_does_not_see_the_data_dir_is_named(
    tmp_path: Path, artifacts: Path, postgres: str
) -> None:
    """A worker in a mount namespace of its own, an empty folder over the data_dir."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to hide the data_dir from a worker")
    config = fleet_folder(tmp_path / "dask", postgres, artifacts, executor=DASK, models=1)
    data_dir = tmp_path / "dask" / "var"
    data_dir.mkdir()
    with cluster() as workers:
        blind = subprocess.Popen(
            [
                "unshare",
                "-m",
                "sh",
                "-c",
                f'mount -t tmpfs none "{data_dir}" && exec "$0" -m distributed.cli.dask_worker'
                f" {workers.scheduler_address} --name blind --nthreads 1 --no-nanny",
                sys.executable,
            ]
        )
        try:
            from distributed import Client

            with Client(workers.scheduler_address) as client:
                client.wait_for_workers(3, timeout=60)
            run = perfwatch(
                "run",
                "--once",
                config=config,
                env={"PERFWATCH_DASK_ADDRESS": workers.scheduler_address},
            )
        finally:
            blind.terminate()
            blind.wait(timeout=30)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "1 Dask worker(s) do not see this data_dir" in run.stderr
    assert "cannot read" in run.stderr and ".perfwatch-data-dir" in run.stderr
    assert "every worker must mount" in run.stderr


def test_one_model_never_runs_two_cycles_at_once(
    tmp_path: Path, artifacts: Path, postgres: str
) -> None:
    """A cycle task that finds the model's lock taken (a task Dask runs twice, or another
    daemon's) does nothing and says so; with the lock free it runs."""
    from perfwatch.executor import Job, cycle_task, mark_data_dir, model_lock

    config = fleet_folder(tmp_path / "dask", postgres, artifacts, executor=DASK, models=1)
    settings = load_settings(config, environ={})
    job = Job(settings, token=mark_data_dir(settings.data_dir), verify=False)
    engine = db.open_engine(settings.store)
    db.migrate(engine)
    with model_lock(engine, "cycle:line00") as held:
        assert held
        report = cycle_task(job, "line00")
        assert report.status == "skipped" and report.files == []
        assert "another cycle" in (report.error or "")
    assert cycle_task(job, "line00").status == "ok"
    engine.dispose()


def test_the_daemon_submits_every_models_cycle_to_the_cluster(
    tmp_path: Path, artifacts: Path, postgres: str
) -> None:
    from tests.cli.test_daemon import output, wait_for
    from tests.workspace import Workspace

    every_second = DASK + '\n[schedule]\ninterval = "2s"'
    config = fleet_folder(tmp_path / "dask", postgres, artifacts, executor=every_second, models=3)
    ws = Workspace(root=tmp_path / "dask", config=config, store=postgres)
    with cluster() as workers:
        address = {"PERFWATCH_DASK_ADDRESS": workers.scheduler_address}
        daemon = subprocess.Popen(
            [sys.executable, "-m", "perfwatch", "--config", str(config), "run"],
            stdout=open(ws.root / "daemon.log", "a"),  # noqa: SIM115 (the child holds it)
            stderr=subprocess.STDOUT,
            env={**os.environ, "NML_DISABLE_USAGE_LOGGING": "1", **address},
        )
        try:

            def all_in() -> bool:
                try:
                    found = figures(config)
                except Exception:  # the daemon is creating the schema
                    return False
                return len(found["batches"]) == 3 * 3 and all(
                    found[f"line{i:02d}"]["estimate"] is not None for i in range(3)
                )

            wait_for("every model's files ingested by cluster tasks", all_in, timeout=180)
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=120) == 0
        finally:
            if daemon.poll() is None:
                daemon.kill()
    assert f"run on the Dask cluster at {workers.scheduler_address}" in output(ws)
    assert not list((tmp_path / "dask" / "inbox").glob("*/*.parquet"))


def test_a_retrain_above_dask_rows_trains_across_the_cluster_and_is_promoted(
    tmp_path: Path, artifacts: Path, postgres: str
) -> None:
    """The covariate-shifted fleet of test_cli's retrain tests, its retrain due, with
    `dask_rows` below its training rows: the retrain task trains with lightgbm.dask on both
    workers, and the challenger is judged, promoted and registered as a local one is."""
    import hashlib

    import pandas as pd

    from tests.workspace import Workspace

    across = '[executor]\nkind = "dask"\ndask_rows = 1000'
    ws = Workspace.create(tmp_path / "ws", artifacts, postgres, extra=across)
    fleet = production(16, scenario="covariate_shift", shift_day=4)
    ws.drop_days(fleet)
    ws.drop_labels(fleet[["id", "failure"]].iloc[: 14 * 800], "log.parquet")
    with cluster() as workers:
        address = {"PERFWATCH_DASK_ADDRESS": workers.scheduler_address}
        first = perfwatch("run", "--once", "--no-retrain", config=ws.config, env=address)
        assert first.returncode == 0, first.stderr
        tick = perfwatch("run", "--once", config=ws.config, env=address)
    assert tick.returncode == 0, tick.stderr
    assert "press: challenger promoted" in tick.stdout, tick.stdout
    listed = json.loads(perfwatch("models", "press", "--json", config=ws.config).stdout)
    assert [(v["version"], v["status"]) for v in listed["versions"]] == [
        (1, "retired"),
        (2, "champion"),
    ]
    learnt = listed["versions"][1]["training_data"]
    assert learnt["trained_in"] == "2 Dask workers"
    original = len(pd.read_parquet(artifacts / "train.parquet"))
    assert learnt["original"]["rows"] == original > 1000
    (kept,) = (ws.root / "var").glob("models/press/retrains/run-*/train.parquet")
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == listed["versions"][1]["training_sha256"]
    assert len(pd.read_parquet(kept)) == original + learnt["appended_rows"], "what it learnt from"


@pytest.fixture
def own_role() -> Iterator[tuple[str, str]]:
    """A PostgreSQL role of this test's own, owning a schema of its own: its URL, and
    its name (the test takes the store away from it alone, not from other tests)."""
    from sqlalchemy import create_engine, make_url, text

    assert POSTGRES is not None
    role = f"pw_outage_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN"))
        connection.execute(text(f"CREATE SCHEMA {role} AUTHORIZATION {role}"))
    url = make_url(POSTGRES).set(username=role, query={"options": f"-csearch_path={role}"})
    try:
        yield url.render_as_string(hide_password=False), role
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"ALTER ROLE {role} LOGIN"))
            terminate(connection, role)
            connection.execute(text(f"DROP SCHEMA {role} CASCADE"))
            connection.execute(text(f"DROP ROLE {role}"))
        admin.dispose()


def terminate(connection: Any, role: str) -> int:
    """Ends every connection of the role (as an administrator's command would)."""
    from sqlalchemy import text

    ended = connection.execute(
        text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :role"),
        {"role": role},
    )
    return len(ended.all())


def test_the_store_goes_away_mid_cycle_and_everything_catches_up(
    tmp_path: Path, artifacts: Path, own_role: tuple[str, str], other_postgres: str
) -> None:
    """A daemon on a cluster of two workers, three models. In the middle of a cycle's
    commit every connection of the store's role is terminated, then the role is refused
    for a minute. The daemon and the workers live through it; once the store is back the
    cycles that could not run are recorded as failed with the reason, the next cycles
    take in every file once, and status tells what happened."""
    from distributed import Client
    from sqlalchemy import create_engine, text

    from tests.cli.test_daemon import output, wait_for
    from tests.workspace import Workspace

    store, role = own_role
    models = 3
    local = fleet_folder(tmp_path / "local", other_postgres, artifacts, models=models)
    assert perfwatch("run", "--once", "--no-retrain", config=local).returncode == 0
    every_2s = DASK + '\n[schedule]\ninterval = "2s"'
    config = fleet_folder(tmp_path / "dask", store, artifacts, executor=every_2s, models=models)
    ws = Workspace(root=tmp_path / "dask", config=config, store=store)
    pause = {
        "PERFWATCH_FAULTS": "pause@committing batches=3",
        "PERFWATCH_FAULTS_ONCE": str(tmp_path / "paused-"),
    }
    admin = create_engine(POSTGRES or "", isolation_level="AUTOCOMMIT")
    with cluster(pause) as workers, Client(workers.scheduler_address) as client:
        before = set(client.scheduler_info()["workers"])
        daemon = subprocess.Popen(
            [sys.executable, "-m", "perfwatch", "--config", str(config), "run"],
            stdout=open(ws.root / "daemon.log", "a"),  # noqa: SIM115 (the child holds it)
            stderr=subprocess.STDOUT,
            env={**os.environ, "NML_DISABLE_USAGE_LOGGING": "1", **address_of(workers)},
        )
        try:
            in_commit = tmp_path / "paused-committing-batches"
            wait_for("a cycle paused in its commit", in_commit.exists)
            with admin.connect() as connection:
                connection.execute(text(f"ALTER ROLE {role} NOLOGIN"))
                assert terminate(connection, role) >= 2, "the daemon's and a worker's"
            time.sleep(60)  # the store refuses the role for a minute
            with admin.connect() as connection:
                connection.execute(text(f"ALTER ROLE {role} LOGIN"))

            def caught_up() -> bool:
                found = figures(config)
                return len(found["batches"]) == models * 3 and all(
                    found[f"line{i:02d}"]["estimate"] is not None for i in range(models)
                )

            wait_for("every file taken in once the store is back", caught_up, timeout=180)
            assert daemon.poll() is None, "the daemon lived through it"
            assert set(client.scheduler_info()["workers"]) == before, "so did the workers"
            screen = perfwatch("status", config=config).stdout
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=120) == 0
        finally:
            if daemon.poll() is None:
                daemon.kill()
    admin.dispose()
    assert figures(config) == figures(local), "nothing lost, nothing counted twice"
    engine = create_engine(store)
    with engine.connect() as connection:
        failed = (
            connection.execute(text("SELECT error FROM cycle WHERE status = 'failed'"))
            .scalars()
            .all()
        )
    engine.dispose()
    assert failed, "the cycles that could not run are recorded"
    assert all("store" in error for error in failed), failed
    assert "last failure" in screen, screen
    log = output(ws)
    assert "Traceback" not in log, log[-3000:]

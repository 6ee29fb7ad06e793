"""Where cycles and retrains run: in this process (`[executor] kind = "local"`, the
default), or as tasks on a Dask cluster (`kind = "dask"`).

On a cluster each model's cycle is one task and each due retrain another; the workers
open the store themselves and write in the same transactions as a local cycle, so the
crash rules hold per task: a task whose worker dies is run again by Dask, and the cycle
it starts finds what the dead one committed. One model never runs two cycles (or two
retrains) at once, even from two daemons or a task Dask ran twice: the task holds a
PostgreSQL advisory lock named by the model for its duration.

Every worker must see the same `data_dir` (the inboxes and the model files live there):
at start the client writes a marker file into it, and every worker (and every task) reads
it back; a worker that does not see it is named in the error.
"""

import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, text

from perfwatch.config import Settings, verifying
from perfwatch.errors import ClusterError

if TYPE_CHECKING:
    from distributed import Client

    from perfwatch.services.monitor import CycleReport
    from perfwatch.store.tables import RetrainRun

log = logging.getLogger(__name__)
MARKER = ".perfwatch-data-dir"  # in data_dir: its token proves a worker sees the same folder


@dataclass(frozen=True)
class Job:
    """What a task needs: the settings, the data_dir marker's token and --verify. Its repr
    names no store URL: Dask shows a task's arguments in its logs and dashboard."""

    settings: Settings
    token: str
    verify: bool

    def __repr__(self) -> str:
        return f"Job(data_dir={str(self.settings.data_dir)!r})"


class LocalExecutor:
    """Cycles and retrains in this process, one after another (`run --once`)."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine, self.settings = engine, settings

    def cycles(self, names: list[str]) -> list["CycleReport"]:
        from perfwatch.services.monitor import run_all

        return run_all(self.engine, self.settings, names)

    def retrains(self, names: list[str]) -> list[tuple[str, "RetrainRun"]]:
        from perfwatch.services.retrain_job import run_due_retrains

        return run_due_retrains(self.engine, self.settings, names)

    def close(self) -> None:
        pass


class DaskExecutor:
    """Cycles and retrains as tasks on the cluster at `[executor] address`; different
    models run in parallel, each model's tasks one at a time."""

    def __init__(self, engine: Engine, settings: Settings, client: "Client") -> None:
        self.engine, self.settings, self.client = engine, settings, client
        self.job = Job(settings, mark_data_dir(settings.data_dir), verifying())
        self.in_flight: dict[str, Any] = {}  # task kind and model -> its future
        check_workers(client, self.job)
        # sent to the workers once, not with every task (it holds every model's settings)
        self.shared_job = client.scatter(self.job, broadcast=True, hash=False)

    def submit(
        self, kind: str, name: str, done: Callable[[str, Future[Any]], None] | None = None
    ) -> Any | None:
        """Start a cycle or retrain task for the model, unless one of this daemon's is
        still running (then None); `done` is called with the model and the future."""
        key = f"{kind}:{name}"
        running = self.in_flight.get(key)
        if running is not None and not running.done():
            return None
        task = cycle_task if kind == "cycle" else retrain_task
        future = self.client.submit(
            task, self.shared_job, name, key=f"perfwatch-{kind}-{name}-{uuid.uuid4().hex[:8]}"
        )
        self.in_flight[key] = future
        if done is not None:
            future.add_done_callback(lambda f: done(name, f))
        return future

    def cycles(self, names: list[str]) -> list["CycleReport"]:
        futures = [(name, self.submit("cycle", name)) for name in names]
        return [_cycle_result(name, future, self.settings.store) for name, future in futures]

    def retrains(self, names: list[str]) -> list[tuple[str, "RetrainRun"]]:
        from perfwatch.services.retrain_job import needs_worker

        due = [n for n in names if self.settings.model(n).retrain.enabled]
        futures = [(n, self.submit("retrain", n)) for n in due if needs_worker(self.engine, n)]
        runs = []
        for name, future in futures:
            try:
                run = future.result() if future is not None else None
            except Exception:  # recorded as failed by the task; the next model goes on
                log.exception("%s: retrain failed", name)
                continue
            if run is not None:
                runs.append((name, run))
        return runs

    def wait(self) -> None:
        """Until this daemon's tasks have ended (a warm stop lets them finish)."""
        from distributed import wait

        wait([f for f in self.in_flight.values() if not f.done()])

    def close(self) -> None:
        self.client.close()


def open_executor(
    engine: Engine, settings: Settings, timeout: float = 30
) -> LocalExecutor | DaskExecutor:
    """The configured executor; for Dask, connected (within `timeout` seconds) and with
    every worker checked."""
    if settings.executor.kind == "local":
        return LocalExecutor(engine, settings)
    try:
        from distributed import Client
    except ImportError:
        raise ClusterError(
            '[executor] kind = "dask" needs Dask',
            hint="install perfwatch with the dask extra: pip install 'perfwatch[dask]'",
        ) from None
    address = settings.executor.address
    if not address:
        raise ClusterError(
            '[executor] kind = "dask" needs the address of the Dask scheduler',
            hint='set [executor] address = "tcp://host:8786" or $PERFWATCH_DASK_ADDRESS',
        )
    try:
        client = Client(address, timeout=timeout)
    except OSError as exc:
        raise ClusterError(
            f"cannot reach the Dask scheduler at {address}: {exc}",
            hint="start it (`dask scheduler`) and its workers (`dask worker ADDRESS`), or set"
            ' [executor] kind = "local"',
        ) from None
    try:
        return DaskExecutor(engine, settings, client)
    except BaseException:
        client.close()
        raise


def check_workers(client: "Client", job: Job) -> None:
    """Every worker sees the data_dir marker, or a ClusterError names those that do not."""
    seen = client.run(_sees_marker, str(job.settings.data_dir), job.token)
    if not seen:
        raise ClusterError(
            f"the Dask cluster at {job.settings.executor.address} has no worker",
            hint="start at least one: dask worker ADDRESS",
        )
    blind = {worker: why for worker, why in seen.items() if why}
    if blind:
        named = "; ".join(f"{worker}: {why}" for worker, why in sorted(blind.items()))
        raise ClusterError(
            f"{len(blind)} Dask worker(s) do not see this data_dir: {named}",
            hint=f"every worker must mount {job.settings.data_dir} (the inboxes and model"
            " files live there) at the same path, e.g. on a shared filesystem",
        )


def cycle_task(job: Job, name: str) -> "CycleReport":
    """A model's cycle on a worker: the store opened here, the model locked for it."""
    from perfwatch.services.monitor import CycleReport, run_cycle

    engine = _worker_engine(job)
    with model_lock(engine, f"cycle:{name}") as held:
        if not held:
            return CycleReport(
                model=name, status="skipped", error="another cycle of this model is running"
            )
        return run_cycle(engine, job.settings, job.settings.model(name))


def retrain_task(job: Job, name: str) -> "RetrainRun | None":
    """A model's retrain on a worker, when still due; one at a time per model."""
    from perfwatch.services.retrain_job import run_retrain

    engine = _worker_engine(job)
    with model_lock(engine, f"retrain:{name}") as held:
        if not held:
            return None
        return run_retrain(engine, job.settings, job.settings.model(name))


@contextmanager
def model_lock(engine: Engine, name: str) -> Iterator[bool]:
    """A PostgreSQL advisory lock on `name` within the store's schema, held on a
    connection of its own while the block runs (a dead worker's connection ends, and
    with it the lock); yields whether it was taken."""
    key = "select hashtext(current_schema() || ':' || :name)"
    with engine.connect() as connection:
        held = connection.scalar(text(f"select pg_try_advisory_lock(({key}))"), {"name": name})
        connection.commit()
        try:
            yield bool(held)
        finally:
            if held:
                connection.execute(text(f"select pg_advisory_unlock(({key}))"), {"name": name})
                connection.commit()


_engines: dict[str, Engine] = {}  # per worker process: one pool per store


def _worker_engine(job: Job) -> Engine:
    """The worker's engine for the job's store (migrated by the daemon that submitted)."""
    from perfwatch.store import db

    problem = _sees_marker(str(job.settings.data_dir), job.token)
    if problem:
        raise ClusterError(f"worker on {socket.gethostname()}: {problem}")
    os.environ["PERFWATCH_VERIFY"] = "1" if job.verify else ""
    url = job.settings.store
    if url not in _engines:
        _engines[url] = db.open_engine(url)
    return _engines[url]


def mark_data_dir(data_dir: Path) -> str:
    """The marker's token, written once per data_dir."""
    marker = data_dir / MARKER
    if not marker.is_file():
        data_dir.mkdir(parents=True, exist_ok=True)
        temporary = marker.with_suffix(f".{uuid.uuid4().hex}")
        temporary.write_text(uuid.uuid4().hex)
        try:  # a link never replaces: of two daemons starting at once, one writes it
            os.link(temporary, marker)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return marker.read_text().strip()


def _sees_marker(data_dir: str, token: str) -> str | None:
    """None when this process sees the marker with the token, else what it sees."""
    marker = Path(data_dir) / MARKER
    try:
        found = marker.read_text().strip()
    except OSError as exc:
        return f"cannot read {marker}: {exc.strerror or exc}"
    return None if found == token else f"{marker} belongs to another data_dir"


def _cycle_result(name: str, future: Any, store: str) -> "CycleReport":
    from perfwatch.services.monitor import CycleReport
    from perfwatch.store.db import explain

    if future is None:
        return CycleReport(model=name, status="skipped", error="its cycle is still running")
    try:
        report: CycleReport = future.result()
    except Exception as exc:  # the task could not run (its store or its worker failed)
        return CycleReport(model=name, status="failed", error=explain(exc, store))
    return report

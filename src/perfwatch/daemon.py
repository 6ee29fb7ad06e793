"""`perfwatch run`: the daemon. APScheduler jobs on the configured schedule:

- per model, the monitoring cycle (on a thread): a failing cycle is logged with its
  traceback and recorded, and the other models go on;
- per model with retraining enabled, the retrain job: `perfwatch retrain MODEL` in a child
  process (minutes of LightGBM must not hold up monitoring; it acts only when due);
- with `[executor] kind = "dask"`, the cycle and retrain jobs submit tasks to the cluster
  instead (see perfwatch.executor) and return: a model whose task still runs skips a tick;
- the heartbeat of the daemon's lease (one daemon per store, see services.lease);
- the delivery of webhook notifications and OpenLineage events, when configured.

A first SIGTERM/SIGINT is a warm stop: the running cycle and retrain end after their
current step (the child gets the signal too), then the daemon exits 0. A second signal
is a cold stop: children are killed and the daemon exits 1 at once. Either way nothing
is lost: every step is its own transaction, and a killed retrain never registers a
half-written model.
"""

import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from perfwatch import stopping
from perfwatch.config import ModelSettings, Settings
from perfwatch.domain.daemon import HEARTBEAT
from perfwatch.domain.durations import parse_duration
from perfwatch.errors import PerfwatchError
from perfwatch.executor import DaskExecutor, open_executor
from perfwatch.services import lease
from perfwatch.store.db import explain

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Future
    from wsgiref.simple_server import WSGIServer

    from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)
MISFIRE_GRACE = 60  # seconds a late job may still start (after a long cycle or a pause)


@dataclass
class Daemon:
    engine: Engine
    settings: Settings
    config: Path
    log_format: str
    names: list[str]
    lease: lease.Lease
    cluster: "DaskExecutor | None" = None
    done: threading.Event = field(default_factory=threading.Event)
    children: set[subprocess.Popen[bytes]] = field(default_factory=set)
    unrecorded: list[tuple[str, datetime, str]] = field(default_factory=list)
    # cycles end on APScheduler's threads and on Dask's callback threads: one records
    recording: threading.Lock = field(default_factory=threading.Lock)

    def cycle(self, model: ModelSettings) -> None:
        """One cycle; when even the store failed, remember it and record it once back."""
        from perfwatch.services.monitor import run_cycle

        started = datetime.now(UTC)
        if self.cluster is not None:
            if not self.cluster.submit("cycle", model.name, self._cycle_ended(started)):
                log.info("%s: its cycle still runs on the cluster: this tick skips it", model.name)
            return
        try:
            run_cycle(self.engine, self.settings, model)  # logs and records its failures
        except Exception as exc:  # the store itself is unreachable: retried next tick
            self._unrecorded(model.name, started, exc)
            return
        self._record_missed()

    def _cycle_ended(self, started: datetime) -> "Callable[[str, Future[Any]], None]":
        def ended(name: str, future: "Future[Any]") -> None:
            try:
                future.result()
            except Exception as exc:  # the task could not run (the store or its worker)
                self._unrecorded(name, started, exc)
                return
            try:
                self._record_missed()
            except Exception as exc:  # the store went away again: kept for the next one
                log.warning("missed cycles not recorded yet: %s", explain(exc, self.settings.store))

        return ended

    def _unrecorded(self, name: str, started: datetime, exc: Exception) -> None:
        error = explain(exc, self.settings.store)
        log.error("%s: cycle could not run: %s", name, error)
        with self.recording:
            self.unrecorded.append((name, started, error))

    def _record_missed(self) -> None:
        """The cycles that could not run, recorded as failed (each once)."""
        from perfwatch.services.monitor import record_failed_cycle

        with self.recording:
            while self.unrecorded:
                name, when, error = self.unrecorded[0]
                record_failed_cycle(self.engine, self.settings.model(name), when, error)
                self.unrecorded.pop(0)

    def retrain(self, name: str) -> None:
        """`perfwatch retrain NAME` in a child process (or a task on the cluster), when the
        policy says it is due."""
        from perfwatch.services.retrain_job import needs_worker

        if stopping.requested():
            return
        try:
            due = needs_worker(self.engine, name)
        except Exception as exc:  # the store is down: the cycles record it; asked next tick
            log.warning("%s: retrain not checked: %s", name, explain(exc, self.settings.store))
            return
        if not due:
            return
        if self.cluster is not None:
            self.cluster.submit("retrain", name, _retrain_ended)
            return
        command = [sys.executable, "-m", "perfwatch", "--config", str(self.config)]
        command += ["--log-format", self.log_format, "--verbose", "retrain", name]
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        self.children.add(child)
        try:
            code = child.wait()
        finally:
            self.children.discard(child)
        if code == -signal.SIGTERM and stopping.requested():
            # our warm stop reached the worker before it could install its own handler
            # (or as it was exiting): nothing half-done, the next start retries if due
            log.info("%s: the retrain worker ended with the warm stop", name)
        elif code not in (0, 1):  # 1: a failed retrain, recorded with its reason
            log.error("%s: the retrain process ended with code %d", name, code)

    def heartbeat(self) -> None:
        try:
            kept = lease.beat(self.engine, self.lease)
        except Exception as exc:  # the store is down: the cycles record it; try again later
            log.warning("heartbeat not written: %s", explain(exc, self.settings.store))
            return
        if not kept:
            log.error("another daemon took over this store's lease: stopping")
            self.done.set()

    def notify(self) -> None:
        from perfwatch.services.notify import deliver

        try:
            deliver(self.engine, self.settings)
        except Exception as exc:  # delivery never stops the daemon; it is retried
            log.warning("notifications not delivered: %s", explain(exc, self.settings.store))

    def warm_stop(self) -> None:
        stopping.request()
        for child in list(self.children):
            child.send_signal(signal.SIGTERM)
        self.done.set()

    def cold_stop(self) -> None:
        for child in list(self.children):
            child.kill()
        logging.shutdown()
        os._exit(1)


def serve(
    engine: Engine,
    settings: Settings,
    names: list[str],
    *,
    config: Path,
    log_format: str,
    standby: bool = False,
) -> None:
    """Run until a signal; raise lease.DaemonRunning if another daemon holds the store
    (with `standby`, wait for its lease to lapse, then lead)."""
    held = _lead(engine, settings.store, standby)
    if held is None:  # stopped while standing by
        return
    daemon = Daemon(engine, settings, config, log_format, names, held)
    try:
        daemon.cluster = _cluster(engine, settings)
        exporter = _exporter(engine, settings, names)
    except PerfwatchError:
        if daemon.cluster is not None:
            daemon.cluster.close()
        lease.release(engine, daemon.lease)
        raise
    scheduler = _scheduler(daemon)
    signals = {"count": 0}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        signals["count"] += 1
        if signals["count"] == 1:
            log.warning("signal %d: finishing the current step, then stopping", signum)
            daemon.warm_stop()
        else:
            log.warning("second signal: stopping now")
            daemon.cold_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("perfwatch daemon (pid %d): %s", os.getpid(), ", ".join(names))
    scheduler.start()
    try:
        while not daemon.done.wait(1):
            pass
        stopping.request()
        scheduler.shutdown(wait=True)  # the running jobs end after their current step
        if daemon.cluster is not None:  # the cluster's tasks end as they would anyway
            daemon.cluster.wait()
    finally:
        if daemon.cluster is not None:
            daemon.cluster.close()
        if exporter is not None:
            exporter.shutdown()
        lease.release(engine, daemon.lease)
    log.info("perfwatch daemon stopped")


def _lead(engine: Engine, store: str, standby: bool) -> lease.Lease | None:
    """The store's lease; with `standby`, once the leading daemon's lapses (None when a
    signal stops the wait)."""
    try:
        return lease.acquire(engine)
    except lease.DaemonRunning as running:
        if not standby:
            raise
        log.info("standing by: %s", running.message)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    me = lease.stand_by(engine)
    try:
        while not stop.wait(HEARTBEAT.total_seconds()):
            try:
                lease.beat_standby(engine, me)
                held = lease.acquire(engine)
            except lease.DaemonRunning:
                continue
            except Exception as exc:  # the store is down: the leader's lease cannot lapse
                log.warning("standby: %s", explain(exc, store))
                continue
            log.warning("the leading daemon's lease lapsed: this daemon leads now")
            return held
        log.info("standby stopped by a signal")
        return None
    finally:
        try:
            lease.leave_standby(engine, me)
        except Exception:  # the store is down: the row's stale heartbeat says enough
            log.warning("standby row not removed (the store is unreachable)")


def _cluster(engine: Engine, settings: Settings) -> "DaskExecutor | None":
    """The Dask executor, connected and checked, when `[executor] kind = "dask"`."""
    executor = open_executor(engine, settings)
    if isinstance(executor, DaskExecutor):
        log.info("cycles and retrains run on the Dask cluster at %s", settings.executor.address)
        return executor
    return None


def _exporter(engine: Engine, settings: Settings, names: list[str]) -> "WSGIServer | None":
    """The Prometheus endpoint, when `metrics_port` is set."""
    if settings.metrics_port is None:
        return None
    from perfwatch.services.exporter import serve_metrics

    address = f"{settings.metrics_address}:{settings.metrics_port}"
    try:
        server = serve_metrics(engine, settings, names)
    except OSError as exc:
        raise PerfwatchError(
            f"cannot serve Prometheus metrics on {address}: {exc.strerror or exc}",
            hint="choose a free metrics_port (or stop what listens there)",
        ) from None
    log.info("Prometheus metrics on http://%s/metrics", address)
    return server


def _scheduler(daemon: Daemon) -> "BackgroundScheduler":
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    schedule = daemon.settings.schedule
    trigger = (
        CronTrigger.from_crontab(schedule.cron, timezone=UTC)
        if schedule.cron
        else IntervalTrigger(
            seconds=parse_duration(schedule.interval or "15m").total_seconds(), timezone=UTC
        )
    )
    scheduler = BackgroundScheduler(
        timezone=UTC,
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": MISFIRE_GRACE,
        },
    )
    now = datetime.now(UTC)
    for name in daemon.names:
        model = daemon.settings.model(name)
        scheduler.add_job(daemon.cycle, trigger, args=[model], id=name, next_run_time=now)
        if model.retrain.enabled:
            scheduler.add_job(daemon.retrain, trigger, args=[name], id=f"retrain:{name}")
    beat = IntervalTrigger(seconds=HEARTBEAT.total_seconds(), timezone=UTC)
    scheduler.add_job(daemon.heartbeat, beat, id="heartbeat")
    if daemon.settings.webhooks or daemon.settings.lineage is not None:
        scheduler.add_job(daemon.notify, IntervalTrigger(seconds=10, timezone=UTC), id="notify")
    return scheduler


def _retrain_ended(name: str, future: "Future[Any]") -> None:
    try:
        future.result()
    except Exception as exc:  # recorded as failed by the task itself, when it could
        log.error("%s: the retrain task failed: %s", name, type(exc).__name__)

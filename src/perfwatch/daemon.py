"""`perfwatch run`: APScheduler jobs per model on the configured schedule.

Each model has a monitoring job (the cycle, on a thread) and, when retraining is enabled,
a retrain job that runs in a separate worker process: a retrain takes minutes of
LightGBM, and monitoring cycles must go on meanwhile. The retrain job acts only when the
policy says a retrain is due. A first SIGTERM/SIGINT lets the running jobs finish, then
exits; a second exits at once. (Heartbeat, store lock and notifications come with the
daemon issue.)
"""

import logging
import signal
import sys
from datetime import UTC, datetime
from multiprocessing import get_context
from types import FrameType

from sqlalchemy import Engine

from perfwatch.config import Settings
from perfwatch.domain.durations import parse_duration

log = logging.getLogger(__name__)


def retrain_job(settings: Settings, name: str) -> None:
    """In the worker process: retrain the model if the policy says it is due."""
    from perfwatch.services.retraining import run_retrain
    from perfwatch.store import db

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    engine = db.open_engine(settings.store)
    try:
        run = run_retrain(engine, settings, settings.model(name))
        if run is not None:
            log.info("%s: retrain %s: %s", name, run.status, run.decision or run.error)
    finally:
        engine.dispose()


def serve(engine: Engine, settings: Settings, names: list[str]) -> None:
    from apscheduler.executors.pool import ProcessPoolExecutor
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    from perfwatch.services.monitor import run_cycle

    schedule = settings.schedule
    # spawn: a clean interpreter, not a fork of one holding threads and store connections
    workers = ProcessPoolExecutor(1, pool_kwargs={"mp_context": get_context("spawn")})
    scheduler = BlockingScheduler(timezone=UTC, executors={"retrain": workers})
    for name in names:
        trigger = (
            CronTrigger.from_crontab(schedule.cron, timezone=UTC)
            if schedule.cron
            else IntervalTrigger(
                seconds=parse_duration(schedule.interval or "15m").total_seconds(), timezone=UTC
            )
        )
        scheduler.add_job(
            run_cycle,
            trigger,
            args=[engine, settings, settings.model(name)],
            id=name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=60,
            next_run_time=datetime.now(UTC),
        )
        if settings.model(name).retrain.enabled:
            scheduler.add_job(
                retrain_job,
                trigger,
                args=[settings, name],
                id=f"retrain:{name}",
                executor="retrain",
                coalesce=True,
                max_instances=1,
                misfire_grace_time=60,
            )
    stops = {"count": 0}

    def stop(signum: int, _frame: FrameType | None) -> None:
        stops["count"] += 1
        if stops["count"] == 1:
            log.warning("signal %d: finishing the running cycle, then stopping", signum)
            scheduler.shutdown(wait=True)
        else:
            log.warning("second signal: stopping now")
            sys.exit(1)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("perfwatch daemon: %d model(s)", len(names))
    scheduler.start()

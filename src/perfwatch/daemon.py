"""`perfwatch run`: one APScheduler job per model on the configured schedule.

A first SIGTERM/SIGINT lets the running cycle finish, then exits; a second exits at once.
(Heartbeat, store lock and notifications come with the daemon issue.)
"""

import logging
import signal
import sys
from datetime import UTC, datetime
from types import FrameType

from sqlalchemy import Engine

from perfwatch.config import Settings
from perfwatch.domain.durations import parse_duration

log = logging.getLogger(__name__)


def serve(engine: Engine, settings: Settings, names: list[str]) -> None:
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    from perfwatch.services.monitor import run_cycle

    schedule = settings.schedule
    scheduler = BlockingScheduler(timezone=UTC)
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

"""One daemon per store: the lease it holds while it runs, and its heartbeat.

A daemon takes the lease at start and renews its heartbeat while it runs. A second daemon
refuses to start while the holder is alive: its heartbeat is fresh and, on the same host,
its process exists. A killed daemon's lease is taken over at once on its own host (the
process is gone) and after `STALE` elsewhere, so a crash never locks the store for ever.
Takeovers compare and swap the holder's token: of two daemons started at once, one wins.

A daemon started with `--standby` waits instead of refusing: it keeps a row of its own
(`standby:TOKEN`, its heartbeat beside the leader's, shown by `status`) and tries the
lease every heartbeat, so it leads within a heartbeat of the leader's lease lapsing.
"""

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, delete, update
from sqlalchemy.exc import IntegrityError

from perfwatch.domain.daemon import STALE, daemon_state
from perfwatch.errors import PerfwatchError
from perfwatch.store.db import transaction
from perfwatch.store.tables import DaemonLease, utcnow

NAME = "daemon"
STANDBY = "standby:"  # + the standby daemon's token


class DaemonRunning(PerfwatchError):
    exit_code = 2


@dataclass(frozen=True)
class Lease:
    token: str
    host: str
    pid: int


def acquire(engine: Engine) -> Lease:
    """Take the lease, or raise DaemonRunning naming the daemon that holds it."""
    mine = Lease(uuid.uuid4().hex, socket.gethostname(), os.getpid())
    now = utcnow()
    try:
        with transaction(engine) as session:
            held = session.get(DaemonLease, NAME)
            if held is None:
                session.add(_row(mine, now))
                return mine
            if holder_alive(held, now):
                raise _refusal(held)
            # an UPDATE's result is a cursor result: it counts the rows it changed
            taken = cast(
                "CursorResult[Any]",
                session.execute(
                    update(DaemonLease)
                    .where(DaemonLease.name == NAME, DaemonLease.token == held.token)  # type: ignore[arg-type]
                    .values(**_values(mine, now))
                ),
            )
            if taken.rowcount != 1:
                raise _refusal(held)  # another daemon took it over a moment before us
    except IntegrityError:  # two first daemons inserted at once: the other one won
        raise DaemonRunning(
            "another perfwatch daemon started on this store at the same moment",
            hint="one daemon per store: stop it first (`perfwatch status` shows it)",
        ) from None
    return mine


def stand_by(engine: Engine) -> Lease:
    """Record a standby daemon (`status` shows it while its heartbeat is fresh)."""
    mine = Lease(uuid.uuid4().hex, socket.gethostname(), os.getpid())
    with transaction(engine) as session:
        session.add(DaemonLease(name=STANDBY + mine.token, **_values(mine, utcnow())))  # type: ignore[arg-type]
    return mine


def beat_standby(engine: Engine, standby: Lease) -> None:
    with transaction(engine) as session:
        session.execute(
            update(DaemonLease)
            .where(DaemonLease.name == STANDBY + standby.token)  # type: ignore[arg-type]
            .values(heartbeat_at=utcnow())
        )


def leave_standby(engine: Engine, standby: Lease) -> None:
    """The standby leads now, or stopped: its row goes."""
    with transaction(engine) as session:
        session.execute(delete(DaemonLease).where(DaemonLease.name == STANDBY + standby.token))  # type: ignore[arg-type]


def ensure_free(engine: Engine) -> None:
    """For `run --once`: raise DaemonRunning while a daemon runs on this store (two
    processes running the same model's cycles would only get in each other's way)."""
    with transaction(engine) as session:
        held = session.get(DaemonLease, NAME)
        if held is not None and holder_alive(held, utcnow()):
            raise _refusal(held)


def beat(engine: Engine, lease: Lease) -> bool:
    """Renew the heartbeat; False when the lease was lost (taken over after a long stall)."""
    with transaction(engine) as session:
        renewed = cast(
            "CursorResult[Any]",
            session.execute(
                update(DaemonLease)
                .where(DaemonLease.name == NAME, DaemonLease.token == lease.token)  # type: ignore[arg-type]
                .values(heartbeat_at=utcnow())
            ),
        )
        return bool(renewed.rowcount == 1)


def release(engine: Engine, lease: Lease) -> None:
    """A warm stop: the lease stays as a record of the daemon, marked stopped."""
    with transaction(engine) as session:
        session.execute(
            update(DaemonLease)
            .where(DaemonLease.name == NAME, DaemonLease.token == lease.token)  # type: ignore[arg-type]
            .values(stopped_at=utcnow(), heartbeat_at=utcnow())
        )


def holder_alive(held: DaemonLease, now: datetime) -> bool:
    if daemon_state(held.heartbeat_at, held.stopped_at, now) != "running":
        return False
    return held.host != socket.gethostname() or process_exists(held.pid)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _refusal(held: DaemonLease) -> DaemonRunning:
    return DaemonRunning(
        f"a perfwatch daemon already runs on this store (pid {held.pid} on {held.host},"
        f" heartbeat {held.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC)",
        hint="one daemon per store: stop that one first; a daemon that was killed is"
        f" replaced at once on its own host, elsewhere after {STALE.seconds} s without heartbeat",
    )


def _values(lease: Lease, now: datetime) -> dict[str, object]:
    return {
        "token": lease.token,
        "host": lease.host,
        "pid": lease.pid,
        "started_at": now,
        "heartbeat_at": now,
        "stopped_at": None,
    }


def _row(lease: Lease, now: datetime) -> DaemonLease:
    return DaemonLease(name=NAME, **_values(lease, now))  # type: ignore[arg-type]

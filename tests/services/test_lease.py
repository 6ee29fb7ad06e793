"""The daemon's lease on both backends: one holder, taken over only from the dead."""

import os
import socket
import subprocess
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from perfwatch.domain.daemon import STALE
from perfwatch.services import lease
from perfwatch.store import db
from perfwatch.store.tables import utcnow


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = db.open_engine(store_url)
    db.migrate(engine)
    yield engine
    engine.dispose()


def held_by(engine: Engine, host: str, pid: int, heartbeat_ago: timedelta) -> None:
    """Pretend another daemon holds the lease (as its row would say)."""
    mine = lease.acquire(engine)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE daemon_lease SET host = :h, pid = :p, heartbeat_at = :t WHERE token = :k"),
            {"h": host, "p": pid, "t": utcnow() - heartbeat_ago, "k": mine.token},
        )


def test_a_live_holder_keeps_the_store(engine: Engine) -> None:
    first = lease.acquire(engine)
    with pytest.raises(lease.DaemonRunning) as refused:
        lease.acquire(engine)
    assert f"pid {first.pid} on {first.host}" in refused.value.message
    with pytest.raises(lease.DaemonRunning):
        lease.ensure_free(engine)
    assert lease.beat(engine, first)


def test_a_daemon_on_another_host_is_trusted_until_its_heartbeat_is_stale(engine: Engine) -> None:
    held_by(engine, "elsewhere", 1, heartbeat_ago=STALE / 2)
    with pytest.raises(lease.DaemonRunning):
        lease.acquire(engine)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE daemon_lease SET heartbeat_at = :t"), {"t": utcnow() - 2 * STALE}
        )
    taken = lease.acquire(engine)
    assert holder(engine) == (taken.token, socket.gethostname(), os.getpid())


def test_a_dead_process_on_this_host_is_replaced_at_once(engine: Engine) -> None:
    alive = subprocess.Popen(["sleep", "60"])
    try:  # a live process on this host with a fresh heartbeat keeps the store ...
        held_by(engine, socket.gethostname(), alive.pid, heartbeat_ago=timedelta(0))
        with pytest.raises(lease.DaemonRunning):
            lease.acquire(engine)
    finally:
        alive.kill()
        alive.wait()
    # ... and the moment it is gone, its fresh heartbeat does not: taken over at once
    taken = lease.acquire(engine)
    assert holder(engine) == (taken.token, socket.gethostname(), os.getpid())


def holder(engine: Engine) -> tuple[str, str, int]:
    with engine.connect() as connection:
        row = connection.execute(text("SELECT token, host, pid FROM daemon_lease")).one()
    return row.token, row.host, row.pid


def test_the_old_holder_learns_it_lost_the_lease(engine: Engine) -> None:
    old = lease.acquire(engine)
    lease.release(engine, old)  # a warm stop: free for the next
    new = lease.acquire(engine)
    assert not lease.beat(engine, old) and lease.beat(engine, new)

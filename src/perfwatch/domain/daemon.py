"""The daemon's liveness, from its lease: running while its heartbeat is fresh."""

from datetime import datetime, timedelta

HEARTBEAT = timedelta(seconds=10)
STALE = timedelta(seconds=60)  # six missed heartbeats: the daemon is gone


def daemon_state(heartbeat_at: datetime, stopped_at: datetime | None, now: datetime) -> str:
    """running | stopped (a warm stop) | gone (killed, or its host lost)."""
    if stopped_at is not None:
        return "stopped"
    return "running" if now - heartbeat_at <= STALE else "gone"

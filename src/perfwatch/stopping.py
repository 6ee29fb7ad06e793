"""A warm stop: asked for by a signal, honoured between steps.

Every step of a cycle and of a retrain is its own transaction, so stopping between two
steps loses nothing: the next run takes up what was left. A retrain also checks once per
boosting round, so a stop never waits for minutes of LightGBM.
"""

import threading

from perfwatch import faults
from perfwatch.errors import PerfwatchError

_requested = threading.Event()


class Stopped(PerfwatchError):
    """A warm stop cut the work short between two steps."""


def request() -> None:
    _requested.set()


def requested() -> bool:
    return _requested.is_set()


def check(before: str) -> None:
    """Raise Stopped when a stop was asked for (before the step `before`). Step
    boundaries are also where the crash tests inject their kills."""
    faults.reach(before)
    if _requested.is_set():
        raise Stopped(f"stopped by a signal before {before}")

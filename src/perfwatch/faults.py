"""Injected faults for the crash tests, from the environment (never set in production):

    PERFWATCH_FAULTS="kill@labels#2,slow_boosting=0.05"

- `kill@POINT` (or `kill@POINT#N`): SIGKILL this process the first (or Nth) time it
  reaches POINT: a step boundary of the cycle or the retrain (see `stopping.check`), or
  one of the points inside a step named where `reach` is called;
- `pause@POINT=SECONDS`: sleep there, so that a test can act while a
  step is under way (take the store away in the middle of a transaction);
- `slow_boosting=SECONDS`: each boosting round of a retrain takes this much longer, so a
  test can interrupt a retrain that would otherwise end too soon.

With PERFWATCH_FAULTS_ONCE=PREFIX a kill or a pause at POINT fires only if the file
PREFIX + the point's name (in slug form) does not exist yet, and creates it: the
processes that inherit the faults (retrain workers, Dask workers) share one kill or
pause per point, and a harness can tell which points fired.
"""

import os
import re
import signal
import time
from functools import cache

_reached: dict[str, int] = {}


@cache
def _faults() -> dict[str, str]:
    spec = os.environ.get("PERFWATCH_FAULTS", "")
    faults = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        if "=" in item:
            name, _, value = item.partition("=")
        else:  # kill@POINT#N
            name, _, value = item.partition("#")
        faults[name] = value or "1"
    return faults


def reach(point: str) -> None:
    """A place where a test may kill this process (SIGKILL: no clean-up runs) or pause it."""
    pause = _faults().get(f"pause@{point}")
    if pause is not None and _claim(point):
        time.sleep(float(pause))
    wanted = _faults().get(f"kill@{point}")
    if wanted is None:
        return
    _reached[point] = _reached.get(point, 0) + 1
    if _reached[point] == int(wanted) and _claim(point):
        os.kill(os.getpid(), signal.SIGKILL)


def _claim(point: str) -> bool:
    """Whether this process makes the fault at `point` (with PERFWATCH_FAULTS_ONCE: the
    first process to get there, once; else every time)."""
    once = os.environ.get("PERFWATCH_FAULTS_ONCE")
    if not once:
        return True
    try:
        open(once + slug(point), "x").close()
    except FileExistsError:
        return False  # another process made it already
    return True


def slug(point: str) -> str:
    return re.sub(r"\W+", "-", point).strip("-")


def boosting_delay() -> None:
    delay = _faults().get("slow_boosting")
    if delay:
        time.sleep(float(delay))

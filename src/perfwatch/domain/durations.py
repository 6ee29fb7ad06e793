"""Durations written the way people write them in the config: "15m", "7D", "6h", "2W"."""

import re
from datetime import timedelta

_UNITS = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "min": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "D": timedelta(days=1),
    "d": timedelta(days=1),
    "W": timedelta(weeks=1),
    "w": timedelta(weeks=1),
}
_DURATION = re.compile(r"^\s*(\d*)\s*(min|s|m|h|D|d|W|w)\s*$")


def parse_duration(text: str) -> timedelta:
    """Parse a positive fixed duration; raise ValueError naming the accepted forms."""
    match = _DURATION.match(text)
    if not match or int(match.group(1) or 1) < 1:
        raise ValueError(
            f"{text!r} is not a duration: use a count and a unit, e.g. 30s, 15m, 6h, 1D, 2W"
            " (months and years vary in length and are not accepted)"
        )
    return int(match.group(1) or 1) * _UNITS[match.group(2)]


def format_duration(length: timedelta) -> str:
    """A duration as the config writes it, in its largest whole unit: 1D, 6h, 30min."""
    seconds = int(length.total_seconds())
    for unit, size in (("W", 604800), ("D", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

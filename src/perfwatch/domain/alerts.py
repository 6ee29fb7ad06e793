"""When an alert opens and when it closes: one open alert per model, kind and subject.

An alert opens on the newest observation that fires, and closes only after
`close_after` observations in a row that do not (hysteresis: a metric hovering at its
threshold does not open and close an alert every chunk, and notifications stay few).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

CLOSE_AFTER = 2
AlertKey = tuple[str, str]  # (kind, subject)


@dataclass(frozen=True)
class Observation:
    """One look at a subject: a chunk's estimate, a judged chunk, a cycle's files."""

    firing: bool
    message: str
    chunk_start: datetime | None = None
    value: float | None = None


@dataclass(frozen=True)
class Signal:
    """A subject's recent observations, oldest first."""

    kind: str  # performance | concept_drift | feature_drift | data_quality | skew | extrapolation
    subject: str
    observations: Sequence[Observation]
    close_after: int = CLOSE_AFTER

    @property
    def key(self) -> AlertKey:
        return (self.kind, self.subject)


@dataclass(frozen=True)
class Opening:
    kind: str
    subject: str
    observation: Observation


def changes(
    open_keys: set[AlertKey], signals: Iterable[Signal]
) -> tuple[list[Opening], list[tuple[AlertKey, Observation]]]:
    """The alerts to open, and those to close (with the observation that closes them)."""
    to_open, to_close = [], []
    for signal in signals:
        if not signal.observations:
            continue
        newest = signal.observations[-1]
        if newest.firing and signal.key not in open_keys:
            to_open.append(Opening(signal.kind, signal.subject, newest))
        recent = signal.observations[-signal.close_after :]
        quiet = len(recent) == signal.close_after and not any(o.firing for o in recent)
        if signal.key in open_keys and quiet:
            to_close.append((signal.key, newest))
    return to_open, to_close

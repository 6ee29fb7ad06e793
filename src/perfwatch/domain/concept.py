"""The concept-drift verdict: realized performance outside the estimate's band.

CBPE estimates performance under the reference concept; when labels show a value the
estimate cannot explain, P(y|x) has changed. "Cannot explain" counts the sampling
error of both figures (the estimate's, and the realized value's on its labeled rows),
and one chunk is not enough: the verdict needs `consecutive` chunks out of band on the
same side.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Judged:
    """One metric of one labeled, mature chunk: realized beside estimated."""

    chunk_start: datetime
    realized: float
    realized_error: float | None
    estimated: float | None  # None: the chunk was never estimated
    estimated_error: float | None


@dataclass(frozen=True)
class Verdict:
    chunk_start: datetime
    out_of_band: bool
    concept_drift: bool
    magnitude: float | None  # realized - estimated


def out_of_band(judged: Judged, *, sigmas: float) -> bool:
    if judged.estimated is None:
        return False
    errors = math.hypot(judged.realized_error or 0.0, judged.estimated_error or 0.0)
    if errors == 0.0:  # no error known: no band to judge against
        return False
    return abs(judged.realized - judged.estimated) > sigmas * errors


def verdicts(chunks: Sequence[Judged], *, consecutive: int, sigmas: float) -> list[Verdict]:
    """Verdicts for one metric's judged chunks, given in data-time order."""
    results = []
    run, side = 0, 0.0
    for judged in chunks:
        outside = out_of_band(judged, sigmas=sigmas)
        magnitude = None if judged.estimated is None else judged.realized - judged.estimated
        this_side = math.copysign(1.0, magnitude) if outside and magnitude else 0.0
        run = run + 1 if outside and this_side == side else (1 if outside else 0)
        side = this_side
        results.append(Verdict(judged.chunk_start, outside, run >= consecutive, magnitude))
    return results

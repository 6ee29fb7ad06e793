"""Opening and closing a model's alerts from what the store now knows.

Each kind of alert looks at its own recent observations (complete chunks' estimates,
judged chunks' verdicts, chunks' data-quality findings, cycles' files, held labels);
`domain.alerts` decides, and the changes are written in one transaction.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session

from perfwatch.config import ModelSettings
from perfwatch.domain.alerts import CLOSE_AFTER, Observation, Signal, changes
from perfwatch.domain.drift import CONFIRM_OVER, MULTIVARIATE
from perfwatch.domain.durations import parse_duration
from perfwatch.domain.thresholds import ADJUSTED_OVER, firing
from perfwatch.ml.model import Skew, SkewFailed
from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.tables import Alert, ChunkEstimate, utcnow

log = logging.getLogger(__name__)
# A column alerts when findings of a kind touch this share of a complete chunk's rows.
# Nulls and unseen categories are pipeline faults; values out of the reference range are
# also what a season or a real shift produces, so they need to be many.
DATA_QUALITY_SHARE = {"null": 0.01, "unseen_category": 0.01, "out_of_range": 0.05}
# skew alerts when this share of the re-scored served scores is off by more than the
# model's skew_tolerance (float32 serving stays far below; a broken transform, far above)
SKEW_SHARE = 0.05
KIND_WORDS = {"null": "null", "unseen_category": "unseen", "out_of_range": "out-of-range"}


@dataclass(frozen=True)
class FilesSeen:
    """This cycle's files, not recorded as a cycle yet."""

    ingested: int
    quarantined: int
    labels_quarantined: int = 0


@dataclass
class AlertChanges:
    opened: list[Alert]
    closed: list[Alert]


def update_alerts(
    engine: Engine,
    model: ModelSettings,
    model_id: int,
    files: FilesSeen,
    skew: "Skew | None" = None,
    drift_failure: str | None = None,
    drift_measured: bool = False,
) -> AlertChanges:
    """Open and close the model's alerts; return what changed. `drift_failure`: why this
    cycle could not measure feature drift (a side step: the rows are stored and
    estimated); `drift_measured`: it did measure it."""
    with transaction(engine) as session:
        # the chunks before them too: an adjusted estimate's alert needs a run of chunks
        estimates = queries.recent_complete_estimates(
            session=session, model_id=model_id, chunks=CLOSE_AFTER + ADJUSTED_OVER - 1
        )
        signals = [
            *_performance(model, estimates),
            *_concept_drift(session, model, model_id),
            *_data_quality(session, model, model_id, estimates),
            *_feature_drift(session, model, model_id),
            _extrapolation(session, model_id),
            _quarantine(session, model_id, files),
            _unmatched_labels(session, model, model_id),
            _skew(session, model, model_id, skew),
            _drift_measurement(drift_failure, drift_measured),
        ]
        current = queries.open_alerts(session=session, model_id=model_id)
        to_open, to_close = changes(set(current), signals)
        opened = [
            Alert(
                model_id=model_id,
                kind=o.kind,
                subject=o.subject,
                chunk_start=o.observation.chunk_start,
                value=o.observation.value,
                message=o.observation.message,
            )
            for o in to_open
        ]
        session.add_all(opened)
        closed = []
        for key, observation in to_close:
            alert = current[key]
            alert.closed_at, alert.closed_reason = utcnow(), observation.message
            session.add(alert)
            closed.append(alert)
    for alert in opened:
        log.warning(
            "%s: alert opened: %s %s: %s", model.name, alert.kind, alert.subject, alert.message
        )
    for alert in closed:
        log.info("%s: alert closed: %s %s", model.name, alert.kind, alert.subject)
    return AlertChanges(opened, closed)


def _day(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "?"


def _performance(model: ModelSettings, estimates: list[ChunkEstimate]) -> list[Signal]:
    """Each metric's estimate on the newest complete chunks."""
    return [
        Signal(
            "performance",
            metric,
            _estimate_observations(model, [e for e in estimates if e.metric == metric]),
        )
        for metric in model.metrics
    ]


def _estimate_observations(model: ModelSettings, chain: list[ChunkEstimate]) -> list[Observation]:
    """A metric's newest complete chunks' estimates, judged by the model's `alert_on`."""
    flags = firing(model.alert_on, [(e.alert, e.adjusted_alert) for e in chain])
    seen = zip(chain, flags, strict=True)
    return [_estimate_observation(e, fired) for e, fired in list(seen)[-CLOSE_AFTER:]]


def _estimate_observation(e: ChunkEstimate, firing: bool) -> Observation:
    """One complete chunk's estimate, and whether it alerts."""
    early = e.adjusted is not None and e.adjusted_reason is None
    if firing and e.alert:
        message = (
            f"estimated {e.metric} {e.value:.3f} is under its threshold {e.threshold:.3f}"
            f" (chunk {_day(e.chunk_start)})"
        )
    elif firing:
        message = (
            f"adjusted {e.metric} {e.adjusted:.3f} is under its threshold {e.threshold:.3f}"
            f" for {ADJUSTED_OVER} chunks up to {_day(e.chunk_start)} (CBPE alone says"
            f" {e.value:.3f}: its {e.adjusted_labels} early label(s) say otherwise)"
        )
    else:
        adjusted = f" (adjusted {e.adjusted:.3f})" if early else ""
        message = f"estimated {e.metric} {e.value:.3f}{adjusted} on {_day(e.chunk_start)}"
    value = e.value if e.alert or not firing else e.adjusted
    return Observation(firing, message, chunk_start=e.chunk_start, value=value)


def _concept_drift(session: Session, model: ModelSettings, model_id: int) -> list[Signal]:
    realized = queries.recent_realized(session=session, model_id=model_id, chunks=CLOSE_AFTER)
    signals = []
    for metric in model.metrics:
        observations = []
        for r in (r for r in realized if r.metric == metric):
            impact = f"; the concept alone moves it {r.impact:+.3f}" if r.impact is not None else ""
            message = (
                f"realized {metric} {r.value:.3f} vs estimated {r.estimated:.3f}"
                f" ({r.magnitude:+.3f}) for {model.concept_drift.consecutive} chunk(s)"
                f" up to {_day(r.chunk_start)}: the relation between inputs and outcomes"
                f" changed{impact}"
                if r.concept_drift and r.estimated is not None and r.magnitude is not None
                else f"realized {metric} {r.value:.3f} within the estimate's band"
            )
            observations.append(
                Observation(r.concept_drift, message, chunk_start=r.chunk_start, value=r.magnitude)
            )
        signals.append(Signal("concept_drift", metric, observations))
    return signals


def _data_quality(
    session: Session, model: ModelSettings, model_id: int, estimates: list[ChunkEstimate]
) -> list[Signal]:
    """Each column's findings on the newest complete chunks (those the estimates cover)."""
    rows = {e.chunk_start: e.rows for e in estimates}
    findings = queries.findings_per_column(
        session=session, model_id=model_id, chunk_starts=sorted(rows)
    )
    signals = []
    for column in model.features:
        observations = []
        for start in sorted(rows):
            shares = {
                kind: findings.get((start, column, kind), 0) / max(rows[start], 1)
                for kind in DATA_QUALITY_SHARE
            }
            over = [kind for kind, share in shares.items() if share >= DATA_QUALITY_SHARE[kind]]
            described = ", ".join(f"{shares[k]:.1%} {KIND_WORDS[k]}" for k in over)
            observations.append(
                Observation(
                    bool(over),
                    f"{column!r} in chunk {_day(start)}: {described} values"
                    if over
                    else f"{column!r} in chunk {_day(start)}: within tolerance",
                    chunk_start=start,
                    value=max(shares.values()),
                )
            )
        signals.append(Signal("data_quality", column, observations))
    return signals


def _feature_drift(session: Session, model: ModelSettings, model_id: int) -> list[Signal]:
    champion = queries.champion(session=session, model_id=model_id)
    if champion is None or champion.id is None:
        return []
    recent = queries.recent_drift(session=session, version_id=champion.id, chunks=CLOSE_AFTER)
    signals = []
    for feature in [*model.features, MULTIVARIATE]:
        name = "all features (PCA reconstruction)" if feature == MULTIVARIATE else repr(feature)
        observations = [
            Observation(
                d.alert,
                f"{name} drifted from the reference: {d.method.replace('_', ' ')} {d.value:.3f}"
                f" (threshold {d.threshold:.3f}) for {CONFIRM_OVER} chunks up to"
                f" {_day(d.chunk_start)}"
                if d.alert and d.threshold is not None
                else f"{name} in chunk {_day(d.chunk_start)}: no confirmed drift",
                chunk_start=d.chunk_start,
                value=d.value,
            )
            for d in recent
            if d.feature == feature
        ]
        signals.append(Signal("feature_drift", feature, observations))
    return signals


def _extrapolation(session: Session, model_id: int) -> Signal:
    """Whether the champion's newest complete chunks lie where its estimate holds."""
    champion = queries.champion(session=session, model_id=model_id)
    recent = []
    if champion is not None and champion.id is not None:
        recent = queries.recent_trust(session=session, version_id=champion.id, chunks=CLOSE_AFTER)
    observations = [
        Observation(
            not t.reliable,
            f"the estimate of chunk {_day(t.chunk_start)} is an extrapolation: {t.reason}"
            if not t.reliable
            else f"chunk {_day(t.chunk_start)} lies within the reference's support",
            chunk_start=t.chunk_start,
            value=t.out_of_domain_share,
        )
        for t in recent
    ]
    return Signal("extrapolation", "estimate", observations)


def _drift_measurement(failure: str | None, measured: bool) -> Signal:
    """A cycle that could not measure feature drift says so; the next that can, closes it."""
    observations = []
    if failure is not None:
        message = f"feature drift could not be measured: {failure}"
        observations.append(Observation(True, message))
    elif measured:
        observations.append(Observation(False, "feature drift measured again"))
    return Signal("feature_drift", "measurement", observations, close_after=1)


def _quarantine(session: Session, model_id: int, files: FilesSeen) -> Signal:
    earlier = queries.recent_file_cycles(session=session, model_id=model_id, cycles=CLOSE_AFTER)
    seen = [(c.batches, c.quarantined, 0) for c in earlier if c.status != "running"]
    if files.ingested or files.quarantined or files.labels_quarantined:
        seen.append((files.ingested, files.quarantined, files.labels_quarantined))
    observations = [
        Observation(
            quarantined + labels > 0,
            f"{_files(quarantined, labels)} quarantined: see `perfwatch status` for the reasons"
            if quarantined + labels
            else f"{ingested} batch file(s) ingested, none quarantined",
            value=float(quarantined + labels),
        )
        for ingested, quarantined, labels in seen
    ]
    return Signal("data_quality", "quarantine", observations)


def _files(batches: int, labels: int) -> str:
    parts = [f"{batches} batch file(s)"] if batches else []
    parts += [f"{labels} label file(s)"] if labels else []
    return " and ".join(parts)


def _skew(session: Session, model: ModelSettings, model_id: int, skew: "Skew | None") -> Signal:
    """Served scores against the champion's on the same inputs, cycle by cycle (a check
    that failed fires too: a skew nobody can measure is not a skew that is absent)."""
    earlier = queries.recent_skew_cycles(session=session, model_id=model_id, cycles=CLOSE_AFTER)
    seen = [
        (c.skew_checked, c.skew_mismatched, c.skew_largest or 0.0, c.skew_error) for c in earlier
    ]
    if isinstance(skew, SkewFailed):
        seen.append((0, 0, 0.0, skew.error))
    elif skew is not None:
        seen.append((skew.checked, skew.mismatched, skew.largest, None))
    observations = [
        _skew_observation(model, checked, mismatched, largest, error)
        for checked, mismatched, largest, error in seen[-CLOSE_AFTER:]
    ]
    return Signal("skew", model.score_column, observations)


def _skew_observation(
    model: ModelSettings, checked: int, mismatched: int, largest: float, error: str | None
) -> Observation:
    if error:
        return Observation(
            True,
            f"the skew check failed: the champion could not re-score the served rows ({error});"
            " rows were stored and estimated from their served scores",
        )
    firing = mismatched >= SKEW_SHARE * checked
    return Observation(
        firing,
        f"served {model.score_column!r} differs from the champion's score on {mismatched}"
        f" of {checked} re-scored rows by more than {model.skew_tolerance} (largest"
        f" {largest:.3f}): serving prepares inputs differently from training (a forgotten"
        " scaler, a stale encoder) or serves another model version"
        if firing
        else f"served scores match the champion's ({checked} rows re-scored)",
        value=mismatched / checked,
    )


def _unmatched_labels(session: Session, model: ModelSettings, model_id: int) -> Signal:
    newest = queries.watermark(session=session, model_id=model_id)
    grace = newest - parse_duration(model.label_grace) if newest else None
    counts = queries.label_counts(session=session, model_id=model_id, grace_before=grace)
    late = counts["unmatched"]
    observation = Observation(
        late > 0,
        f"{late} labels name ids of rows perfwatch has not stored, {model.label_grace} of data"
        " time on (held, not lost: they are matched when their rows arrive). Their batches"
        " have not arrived or were quarantined, or the label files and the batches write"
        " the ids differently"
        if late
        else "every held label is within its grace period",
        value=float(late),
    )
    return Signal("data_quality", "labels", [observation], close_after=1)

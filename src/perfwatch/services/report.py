"""What `perfwatch report` shows, read from the store alone: it never estimates or trains.

Per chunk the report shows the estimate that was live then: the one of the first version
that estimated the chunk (a promotion re-estimates history with the new version, which
`history --json` keeps too). Long histories are windowed to the newest MAX_CHUNKS chunks,
and the page says so.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from perfwatch.errors import PerfwatchError
from perfwatch.services.status import below_bar, history, iso, model_status
from perfwatch.store import reads

MAX_CHUNKS = 730  # two years of daily chunks: beyond this a browser chart gets sluggish


@dataclass
class ReportData:
    model: str
    status: dict[str, Any]
    metrics: list[str]
    estimates: list[dict[str, Any]]  # one row per chunk and metric (history's fields)
    drift: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    retrains: list[dict[str, Any]]
    quarantined: list[dict[str, Any]]
    alignment: list[dict[str, Any]] = field(default_factory=list)  # checks before deployment
    chunks: int = 0  # chunks in the store (before the window)
    shown: int = 0  # chunks on the page
    headline: str = ""
    notes: list[str] = field(default_factory=list)


def report_data(
    engine: Engine, name: str, known: dict[str, list[str]], since: datetime | None
) -> ReportData:
    """`known`: the config's models and their metrics (in the config's order)."""
    if name not in known:
        raise PerfwatchError(
            f"no model named {name!r}",
            hint=f"the config declares: {', '.join(known)}",
        )
    status = model_status(engine, [name])[0]
    rows = _live_estimates(history(engine, name))
    starts = sorted({r["chunk_start"] for r in rows})
    chunks = len(starts)
    if since is not None:
        starts = [s for s in starts if s >= since.isoformat()]
    shown = starts[-MAX_CHUNKS:]
    first = shown[0] if shown else None
    with engine.connect() as connection:
        model_id = reads.model_ids(connection).get(name)
        assert model_id is not None or not rows
        drift = reads.drift_history(connection, model_id) if model_id else []
        findings = reads.findings_history(connection, model_id) if model_id else []
        alerts = reads.alert_history(connection, model_id) if model_id else []
        retrains = reads.retrain_history(connection, model_id) if model_id else []
        quarantined = reads.quarantined(connection, model_id, limit=200) if model_id else []
        numbers = reads.versions(connection, model_id)[0] if model_id else {}
        checks = reads.alignment_checks(connection, model_id) if model_id else []

    def recent(when: datetime | None) -> bool:
        return first is None or (when is not None and iso(when) >= first)

    data = ReportData(
        model=name,
        status=status,
        metrics=[m for m in known[name] if any(r["metric"] == m for r in rows)],
        estimates=[r for r in rows if first is not None and r["chunk_start"] >= first],
        drift=_live_drift([d for d in drift if recent(d["chunk_start"])]),
        findings=[f for f in findings if recent(f["chunk_start"])],
        alerts=[a for a in alerts if recent(a["chunk_start"] or a["opened_at"])],
        retrains=[_lineage(r, numbers) for r in retrains if recent(r["data_time"])],
        quarantined=quarantined,
        alignment=[c | {"figures": json.loads(c["figures"])} for c in checks],
        chunks=chunks,
        shown=len(shown),
    )
    data.headline = headline(status)
    if len(shown) < len(starts):
        data.notes.append(
            f"Showing the newest {len(shown):,} of {len(starts):,} chunks"
            " (use --since to choose where the page starts)."
        )
    return data


def _lineage(run: dict[str, Any], numbers: dict[int, int]) -> dict[str, Any]:
    """A retrain run with what the lineage table shows: versions by number, the rows it
    appended, the gate's primary metric for both models."""
    manifest, gate = json.loads(run["manifest"] or "{}"), json.loads(run["gate"] or "{}")
    primary = gate.get("primary")
    return run | {
        "version": numbers.get(run["version_id"]),
        "parent": numbers.get(run["parent_version_id"]),
        "appended_rows": manifest.get("appended_rows"),
        "batches": len(manifest.get("batches", [])),
        "gate": (
            f"{primary}: champion {gate['champion'][primary]:.3f},"
            f" challenger {gate['challenger'][primary]:.3f}"
            if primary and gate.get("champion") and gate.get("challenger")
            else gate.get("reason", "")
        ),
    }


def _live_estimates(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per chunk and metric, the row of the first version that estimated it."""
    live: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["chunk_start"], row["metric"])
        if key not in live or (row["model_version"] or 0) < (live[key]["model_version"] or 0):
            live[key] = row
    return sorted(live.values(), key=lambda r: r["chunk_start"])


def _live_drift(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    live: dict[tuple[datetime, str], dict[str, Any]] = {}
    for row in rows:  # ordered by chunk, then version: the first one stays
        live.setdefault((row["chunk_start"], row["feature"]), row)
    return list(live.values())


def _under_bar_figures(status: dict[str, Any]) -> str:
    """`realized roc_auc 0.830 vs the bar 0.927`, for each figure under its bar."""
    parts = []
    for key, word in (("latest_realized", "realized"), ("latest_complete_estimate", "estimated")):
        for metric, f in ((status.get(key) or {}).get("metrics") or {}).items():
            if f.get("under_bar"):
                parts.append(f"{word} {metric} {f['value']:.3f} vs the bar {f['bar']:.3f}")
    return ", ".join(parts)


def headline(status: dict[str, Any]) -> str:
    """One sentence: what needs attention now (the retrain state after a semicolon)."""
    cycle = status["last_cycle"]
    if cycle is None:
        return "No cycle has run yet: drop batch files into the inbox and run `perfwatch run`."
    if cycle["status"] == "failed":
        return f"The last cycle failed: {cycle['error']}."
    retrain = status["retrain"]
    waiting = (
        f"; retrain: {retrain['state'].replace('_', ' ')} ({retrain['reason']})"
        if retrain.get("reason") and retrain["state"] not in ("healthy", "disabled")
        else ""
    )
    by_kind: dict[str, list[str]] = {}
    for alert in status["alerts"]:
        by_kind.setdefault(alert["kind"], []).append(alert["subject"])
    under = below_bar(status)
    if under and "performance" not in by_kind:
        return (
            f"{', '.join(under)} under the bar set at deployment: {_under_bar_figures(status)}"
            f"{waiting}."
        )
    if "performance" in by_kind:
        return (
            f"Estimated {', '.join(by_kind['performance'])} under threshold: the model is"
            f" probably degraded now, before labels confirm it{waiting}."
        )
    if "concept_drift" in by_kind:
        return (
            f"Concept drift on {', '.join(by_kind['concept_drift'])}: realized performance"
            f" has left the estimate's band{waiting}."
        )
    complete = status.get("latest_complete_estimate") or {}
    if "extrapolation" in by_kind or complete.get("reliable") is False:
        why = complete.get("trust_reason") or "its rows lie outside the reference"
        return (
            f"The estimate cannot be trusted: {why}. Early labels, then realized figures,"
            f" are the only measure here{waiting}."
        )
    if by_kind:
        listed = "; ".join(f"{k.replace('_', ' ')}: {', '.join(v)}" for k, v in by_kind.items())
        return f"Performance holds, but inputs need a look ({listed}){waiting}."
    return "Nothing needs attention: every estimate is within its threshold and no alert is open."

"""What `status` and `history` report, as plain JSON-ready dicts (the CLI renders them).

Only the store's lean read path is used here: no ORM, no pandas, no nannyml, so both
commands answer fast however long the history.
"""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from perfwatch.domain.thresholds import under_bar
from perfwatch.store import reads

Inboxes = tuple[Path, Path | None]  # a model's batch inbox and labels inbox
METRIC_KINDS = ("performance", "concept_drift")  # alerts whose subject is a metric
TREND_CHUNKS = 14  # complete chunks in the sparklines of `status`
RECENT_FAILURE = timedelta(days=1)  # failed cycles shown after recovery for this long
ADJUSTED = (  # a complete chunk's delay-adjusted estimate, per metric (None: not made)
    "adjusted",
    "adjusted_lower",
    "adjusted_upper",
    "adjusted_alert",
    "adjusted_labels",
    "adjusted_reason",
)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def model_status(
    engine: Engine, names: list[str], inboxes: Mapping[str, Inboxes] | None = None
) -> list[dict[str, Any]]:
    """One status object per model (DESIGN.md's `status --json` contract); with the
    models' `inboxes`, also the files waiting in them."""
    with engine.connect() as connection:
        known = reads.model_ids(connection)
        found = [_one(connection, name, known.get(name)) for name in names]
    for item in found:
        if inboxes is not None and item["name"] in inboxes:
            item["waiting"] = waiting_files(*inboxes[item["name"]])
        item["state"] = _state(item)
    return found


def waiting_files(inbox: Path, labels_inbox: Path | None) -> dict[str, Any]:
    """Files waiting in a model's inboxes (the next cycle takes them), and since when."""
    from perfwatch.ingest.inbox import waiting

    batches, labels = waiting(inbox), waiting(labels_inbox)
    times = [p.stat().st_mtime for p in batches + labels]
    oldest = datetime.fromtimestamp(min(times), UTC) if times else None
    return {"batches": len(batches), "labels": len(labels), "oldest": iso(oldest)}


def _state(item: dict[str, Any]) -> str:
    """One word for a model: `failing` (its last cycle failed), `alert` (an alert is
    open), `under_bar` (an estimate or realized value under the bar), `unreliable` (the
    latest complete estimate cannot be trusted), `ok`, or `new` (no cycle yet)."""
    cycle = item["last_cycle"]
    if cycle is not None and cycle["status"] == "failed":
        return "failing"
    if item["alerts"]:
        return "alert"
    if below_bar(item):
        return "under_bar"
    if (item["latest_complete_estimate"] or {}).get("reliable") is False:
        return "unreliable"
    return "ok" if cycle is not None else "new"


def below_bar(item: dict[str, Any]) -> list[str]:
    """The metrics whose latest complete estimate or latest realized value is under the
    bar: a model is not healthy then, whatever its own (re-fitted) thresholds say."""
    found = []
    for key in ("latest_complete_estimate", "latest_realized"):
        figures = (item.get(key) or {}).get("metrics", {})
        found += [m for m, f in figures.items() if f.get("under_bar") and m not in found]
    return found


def service_status(engine: Engine) -> dict[str, Any]:
    """The daemon (from its lease) and the webhook messages not delivered yet."""
    from perfwatch.domain.daemon import daemon_state

    now = datetime.now(UTC)
    with engine.connect() as connection:
        lease = reads.daemon(connection)
        waiting = reads.standbys(connection)
        backlog = reads.notification_backlog(connection)
    daemon: dict[str, Any] = {"state": "never_started"}
    if lease is not None:
        state = daemon_state(lease["heartbeat_at"], lease["stopped_at"], now)
        daemon = {"state": state, "host": lease["host"], "pid": lease["pid"]} | {
            key: iso(lease[key]) for key in ("started_at", "heartbeat_at", "stopped_at")
        }
    standby = [  # a standby killed without a word is gone once its heartbeat is stale
        {"host": s["host"], "pid": s["pid"]}
        | {key: iso(s[key]) for key in ("started_at", "heartbeat_at")}
        for s in waiting
        if daemon_state(s["heartbeat_at"], s["stopped_at"], now) == "running"
    ]
    return {
        "daemon": daemon,
        "standby": standby,
        "notifications": backlog | {"oldest": iso(backlog["oldest"])},
    }


def _one(connection: Connection, name: str, model_id: int | None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": name,
        "champion_version": None,
        "last_cycle": None,
        "last_failure": None,  # the newest failed cycles of the last day, when it recovered
        "batches_ingested": 0,
        "batches_quarantined": 0,
        "rows_ingested": 0,
        "latest_estimate": None,
        "latest_complete_estimate": None,
        "latest_realized": None,
        "labels": None,
        "alerts": [],
        "data_quality": [],
        "feature_drift": None,
        "quarantined": [],
        "retrain": {"state": "not_available", "count": 0, "last": None},
        "trend": {},
    }
    if model_id is None:
        return status
    status["trend"] = _trend(reads.recent_trend(connection, model_id, TREND_CHUNKS))
    numbers, status["champion_version"] = reads.versions(connection, model_id)
    cycle = reads.last_cycle(connection, model_id)
    if cycle is not None:
        failed, since = reads.failed_streak(connection, model_id)
        status["last_cycle"] = {
            key: cycle[key] for key in ("status", "error", "rows", "batches", "quarantined")
        } | {
            "started_at": iso(cycle["started_at"]),
            "finished_at": iso(cycle["finished_at"]),
            "failed_in_a_row": failed,  # the newest finished cycles that failed
            "failing_since": iso(since),
        }
        failures = reads.last_failures(connection, model_id)
        if failures is not None and failures["last_at"] > datetime.now(UTC) - RECENT_FAILURE:
            status["last_failure"] = failures | {
                "first_at": iso(failures["first_at"]),
                "last_at": iso(failures["last_at"]),
            }
    counts = reads.batch_counts(connection, model_id)
    status["batches_ingested"], status["rows_ingested"] = counts.get("ingested", (0, 0))
    status["batches_quarantined"] = counts.get("quarantined", (0, 0))[0]
    latest = reads.latest_estimates(connection, model_id)
    complete = (
        latest
        if latest and not latest[0]["provisional"]
        else reads.latest_estimates(connection, model_id, complete=True)
    )
    status["latest_estimate"] = _estimate(connection, latest, numbers)
    status["latest_complete_estimate"] = _estimate(connection, complete, numbers)
    status["alerts"] = [
        {
            "kind": a["kind"],
            "metric": a["subject"] if a["kind"] in METRIC_KINDS else None,
            "subject": a["subject"],
            "chunk_start": iso(a["chunk_start"]),
            "message": a["message"],
            "opened_at": iso(a["opened_at"]),
        }
        for a in reads.open_alerts(connection, model_id)
    ]
    status["latest_realized"] = _realized(reads.latest_realized(connection, model_id))
    status["feature_drift"] = _drift(reads.latest_drift(connection, model_id))
    decision = reads.latest_retrain_decision(connection, model_id)
    if decision is not None:
        status["retrain"] |= {
            "state": decision["state"],
            "trigger": decision["trigger"],
            "reason": decision["reason"],
            "decided_at": iso(decision["decided_at"]),
        }
    elif cycle is not None:
        status["retrain"]["state"] = "healthy"
    count, newest = reads.retrain_runs(connection, model_id)
    status["retrain"]["count"] = count
    if newest is not None:
        if newest["status"] == "running":
            status["retrain"]["state"] = "running"
        status["retrain"]["last"] = {
            "version": numbers.get(newest["version_id"]),
            "trigger": newest["trigger"],
            "decision": newest["decision"],
            "status": newest["status"],
            "error": newest["error"],
            "finished_at": iso(newest["finished_at"]),
        }
    status["labels"] = reads.label_summary(connection, model_id) | {
        "newest_chunk": _coverage(reads.newest_labeled_chunk(connection, model_id))
    }
    if latest:
        start = latest[0]["chunk_start"]
        status["data_quality"] = [
            {"chunk_start": iso(start), "column": column, "kind": kind, "count": count}
            for column, kind, count in reads.findings_in_chunk(connection, model_id, start)
        ]
    status["quarantined"] = [
        {
            "file": b["file_name"],
            "reason": b["reason"],
            "at": iso(b["ingested_at"]),
            "fixed_at": iso(b["fixed_at"]),  # a fixed copy of the same name was ingested
        }
        for b in reads.quarantined(connection, model_id)
    ]
    return status


def _trend(rows: list[dict[str, Any]]) -> dict[str, dict[str, list[float | None]]]:
    """Per metric, the newest complete chunks' `estimated` and `realized` values, oldest
    first (the newest version's estimate where several estimated a chunk)."""
    per_chunk: dict[str, dict[Any, dict[str, Any]]] = {}
    for row in rows:  # ordered by chunk, then version: the newest version wins
        per_chunk.setdefault(row["metric"], {})[row["chunk_start"]] = row
    return {
        metric: {
            "estimated": [r["value"] for r in chunks.values()],
            "realized": [r["realized"] for r in chunks.values()],
        }
        for metric, chunks in per_chunk.items()
    }


def _chunk(
    per_metric: list[dict[str, Any]], figures: tuple[str, ...], **about: Any
) -> dict[str, Any]:
    """A chunk's span, what else is said `about` it and, per metric, these figures of it
    (and whether it is under the bar), from its rows (one per metric)."""
    first = per_metric[0]
    return {
        "chunk_start": iso(first["chunk_start"]),
        "chunk_end": iso(first["chunk_end"]),
        **about,
        "metrics": {
            r["metric"]: {key: r[key] for key in figures}
            | {"under_bar": under_bar(r["value"], r["bar"])}
            for r in per_metric
        },
    }


def _realized(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not rows:
        return None
    figures = ("value", "estimated", "out_of_band", "concept_drift", "magnitude", "impact", "bar")
    coverage, labeled = rows[0]["coverage"], rows[0]["labeled_rows"]
    return _chunk(rows, figures, label_coverage=coverage, labeled_rows=labeled)


def _drift(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not rows:
        return None
    return {
        "chunk_start": iso(rows[0]["chunk_start"]),
        "features": {
            r["feature"]: {
                key: r[key] for key in ("method", "value", "threshold", "p_value", "alert")
            }
            for r in rows
        },
    }


def _coverage(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "chunk_start": iso(row["chunk_start"]),
        "label_coverage": row["coverage"],
        "labeled": row["labeled"],
        "rows": row["computed_rows"],
        "mature": row["mature"],
    }


def _estimate(
    connection: Connection, rows: list[dict[str, Any]], numbers: dict[int, int]
) -> dict[str, Any] | None:
    if not rows:
        return None
    first = rows[0]
    figures = ("value", "lower", "upper", "threshold", "alert", "bar", *ADJUSTED)
    trust = reads.trust_of_chunk(
        connection, first["model_id"], first["version_id"], first["chunk_start"]
    )
    return _chunk(
        rows,
        figures,
        provisional=first["provisional"],
        rows=first["rows"],
        model_version=numbers.get(first["version_id"]),
        **_trust(trust),
    )


def _trust(row: dict[str, Any] | None) -> dict[str, Any]:
    """A chunk's trust figures (all None while not measured: a provisional chunk)."""
    keys = ("reliable", "out_of_domain_share", "domain_auc")
    if row is None:
        return dict.fromkeys(keys) | {"trust_reason": None}
    return {key: row[key] for key in keys} | {"trust_reason": row["reason"]}


def history(engine: Engine, name: str, metric: str | None = None) -> list[dict[str, Any]]:
    """One row per chunk x metric x version (DESIGN.md's `history --json` contract)."""
    with engine.connect() as connection:
        model_id = reads.model_ids(connection).get(name)
        if model_id is None:
            return []
        numbers, _ = reads.versions(connection, model_id)
        realized = {
            (r["chunk_start"], r["metric"]): r
            for r in reads.realized_history(connection, model_id, metric)
        }
        coverage = reads.coverage_history(connection, model_id)
        trust = reads.trust_history(connection, model_id)
        rows = []
        for r in reads.estimate_history(connection, model_id, metric):
            judged = realized.get((r["chunk_start"], r["metric"]))
            trusted = trust.get((r["chunk_start"], r["version_id"]))
            rows.append(
                {
                    "chunk_start": iso(r["chunk_start"]),
                    "chunk_end": iso(r["chunk_end"]),
                    "model_version": numbers.get(r["version_id"]),
                    "metric": r["metric"],
                    "estimated": r["value"],
                    "adjusted": r["adjusted"],
                    "adjusted_lower": r["adjusted_lower"],
                    "adjusted_upper": r["adjusted_upper"],
                    "adjusted_alert": r["adjusted_alert"],
                    "lower": r["lower"],
                    "upper": r["upper"],
                    "threshold": r["threshold"],
                    "bar": r["bar"],
                    "alert": r["alert"],
                    "provisional": r["provisional"],
                    "rows": r["rows"],
                    "realized": judged["value"] if judged else None,
                    "label_coverage": coverage.get(r["chunk_start"]),
                    "concept_drift": judged["concept_drift"] if judged else None,
                    "reliable": trusted["reliable"] if trusted else None,
                }
            )
        return rows

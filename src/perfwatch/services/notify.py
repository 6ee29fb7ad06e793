"""Webhook notifications: one message when an alert opens, one when it closes, one when a
retrain's challenger is promoted, rejected or left as a candidate.

Messages are derived from what the store records (alerts, retrain runs), so none is lost
however the daemon dies: each event is written once per webhook into the `notification`
outbox (its unique key deduplicates), then POSTed as JSON with a Slack-compatible `text`.
A failed delivery is recorded and retried with backoff; a webhook gets at most
`max_per_minute` messages a minute, the rest wait their turn, in order. Delivery runs in
its own job (or after `run --once`), never inside a cycle. A webhook URL may hold a
token: only its host is ever stored or logged.
"""

import hashlib
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import Engine

from perfwatch import faults
from perfwatch.config import Settings, Webhook
from perfwatch.domain.durations import parse_duration
from perfwatch.store import queries
from perfwatch.store.db import transaction
from perfwatch.store.tables import Alert, Notification, RetrainRun, utcnow

if TYPE_CHECKING:
    from sqlmodel import Session

log = logging.getLogger(__name__)
LOOKBACK = timedelta(days=7)  # events are derived again this far back (dedup by key)
FIRST_RETRY, LAST_RETRY = timedelta(seconds=5), timedelta(minutes=5)  # doubling between
LINEAGE_PER_MINUTE = 6000  # a catalog takes events in bulk: no webhook's rate limit


Event = tuple[str, datetime, int, str, dict[str, Any]]  # key, when, order, model, payload


@dataclass(frozen=True)
class Target:
    """Where messages go: a webhook, or the OpenLineage transport (services.lineage)."""

    key: str  # the target's key in the store: a webhook's URL may hold a token
    host: str  # where it is, for people (never a URL's path or token)
    label: str  # what it is, for the log: "webhook HOST", "OpenLineage HOST"
    send: "Callable[[str], str | None]"  # None when delivered, else why not
    per_minute: int
    # the target's events since a time (derived from what the store records), but for
    # those whose keys are given (written already: not worth building again)
    events: "Callable[[Session, datetime, set[str]], list[Event]]"

    @classmethod
    def of(cls, webhook: Webhook) -> "Target":
        parts = urlsplit(webhook.url)
        key = hashlib.sha256(webhook.url.encode()).hexdigest()[:16]
        host = parts.netloc.rpartition("@")[2]
        send = partial(post, webhook)
        return cls(key, host, f"webhook {host}", send, webhook.max_per_minute, _events)


def targets(settings: Settings) -> list[Target]:
    """The webhooks and the OpenLineage transport the config names."""
    found = [Target.of(w) for w in settings.webhooks]
    if settings.lineage is not None:
        from perfwatch.services import lineage

        where = lineage.transport(settings.lineage)
        derive = partial(lineage.events, settings)
        found.append(
            Target(where.key, where.host, where.host, where.send, LINEAGE_PER_MINUTE, derive)
        )
    return found


@dataclass
class Delivery:
    delivered: int = 0
    failed: int = 0


def deliver(engine: Engine, settings: Settings) -> Delivery:
    """Write the new events into the outbox, then send what is due to each target."""
    faults.reach("delivering notifications")
    found = targets(settings)
    outcome = Delivery()
    if found:
        enqueue(engine, found)
    for target in found:
        _send_due(engine, target, outcome)
    return outcome


def watch(engine: Engine, settings: Settings) -> None:
    """Before the first cycle: a target new to the store is told of what happens from now."""
    with transaction(engine) as session:
        for target in targets(settings):
            queries.webhook_target(session=session, key=target.key, host=target.host)


def enqueue(engine: Engine, targets: list[Target]) -> int:
    """One outbox row per (target, event) not written yet; return how many were added."""
    now = utcnow()
    added = 0
    with transaction(engine) as session:
        known = {
            t.key: queries.webhook_target(session=session, key=t.key, host=t.host) for t in targets
        }
        earliest = max(min(k.first_seen for k in known.values()), now - LOOKBACK)
        derived: dict[Any, list[Event]] = {}
        for target in targets:
            since = max(known[target.key].first_seen, now - LOOKBACK)
            done = queries.notified_events(session=session, target=target.key, since=since)
            if target.events not in derived:  # the webhooks' events are derived once
                derived[target.events] = target.events(session, earliest, done)
            for event, at, _, model, payload in derived[target.events]:
                if at >= since and event not in done:
                    session.add(
                        Notification(
                            target=target.key, event=event, model=model, payload=json.dumps(payload)
                        )
                    )
                    added += 1
    return added


def _events(session: "Session", since: datetime, _done: set[str] | None = None) -> list[Event]:
    """(event key, when, order, model, message) of every event since then, oldest first."""
    events = []
    for alert, model in queries.alerts_changed_since(session=session, since=since):
        if alert.opened_at >= since:
            opened = _alert(alert, model, "opened")
            events.append((f"alert:{alert.id}:opened", alert.opened_at, 0, model, opened))
        if alert.closed_at is not None and alert.closed_at >= since:
            closed = _alert(alert, model, "closed")
            events.append((f"alert:{alert.id}:closed", alert.closed_at, 0, model, closed))
    for run, model, version in queries.retrains_decided_since(session=session, since=since):
        assert run.finished_at is not None
        event = f"retrain:{run.id}:{run.decision}"
        events.append((event, run.finished_at, 0, model, _retrain(run, model, version)))
    return sorted(events, key=lambda e: e[1])


def _alert(alert: Alert, model: str, change: str) -> dict[str, Any]:
    subject = f"{alert.kind} · {alert.subject}"
    text = (
        f"perfwatch · {model}: alert opened: {subject}: {alert.message}"
        if change == "opened"
        else f"perfwatch · {model}: alert closed: {subject} ({alert.closed_reason or 'resolved'})"
    )
    return {
        "text": text,
        "event": f"alert_{change}",
        "model": model,
        "alert": {
            "id": alert.id,
            "kind": alert.kind,
            "subject": alert.subject,
            "message": alert.message,
            "chunk_start": alert.chunk_start.isoformat() if alert.chunk_start else None,
            "opened_at": alert.opened_at.isoformat(),
            "closed_at": alert.closed_at.isoformat() if alert.closed_at else None,
        },
    }


def _retrain(run: RetrainRun, model: str, version: int | None) -> dict[str, Any]:
    gate = json.loads(run.gate or "{}")
    named = f"version {version}" if version else "the challenger"
    text = f"perfwatch · {model}: retrain {run.decision}: {named} ({gate.get('reason', '')})"
    return {
        "text": text,
        "event": f"retrain_{run.decision}",
        "model": model,
        "retrain": {
            "run": run.id,
            "trigger": run.trigger,
            "decision": run.decision,
            "version": version,
            "reason": gate.get("reason"),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        },
    }


def _send_due(engine: Engine, target: Target, outcome: Delivery) -> None:
    """Send the target's pending messages in order, until one fails or the rate limit."""
    now = utcnow()
    with transaction(engine) as session:
        sent = queries.delivered_since(
            session=session, target=target.key, since=now - timedelta(minutes=1)
        )
        room = target.per_minute - sent
        pending = queries.pending_notifications(
            session=session, target=target.key, limit=max(room, 0)
        )
        session.expunge_all()
    for message in pending:
        if message.next_attempt_at > now:
            return  # the oldest waits for its retry: the later ones wait behind it
        error = target.send(message.payload)
        with transaction(engine) as session:
            message.attempts += 1
            if error is None:
                message.delivered_at, message.last_error = utcnow(), None
            else:
                message.last_error = error
                message.next_attempt_at = utcnow() + _backoff(message.attempts)
            session.add(message)
        if error is not None:
            outcome.failed += 1
            log.warning(
                "%s: %s failed (attempt %d, retried later): %s",
                message.model,
                target.label,
                message.attempts,
                error,
            )
            return
        outcome.delivered += 1


def _backoff(attempts: int) -> timedelta:
    return min(FIRST_RETRY * 2 ** (attempts - 1), LAST_RETRY)


def post(webhook: Webhook, payload: str) -> str | None:
    """POST one message to a webhook; None when delivered, else why not."""
    return post_json(webhook.url, webhook.headers, webhook.timeout, payload)


def post_json(
    url: str, headers: dict[str, str], timeout: str, payload: str, *, what: str = "webhook"
) -> str | None:
    """POST one JSON document; None when delivered, else why not (never the URL: it may
    hold a token). `what`: whose headers these are, for the error."""
    try:
        sent = {name: _header(value) for name, value in headers.items()}
    except KeyError as missing:
        return f"environment variable {missing.args[0]} is not set (a {what} header needs it)"
    request = urllib.request.Request(
        url,
        data=payload.encode(),
        headers={"Content-Type": "application/json", **sent},
        method="POST",
    )
    seconds = parse_duration(timeout).total_seconds()
    try:
        with urllib.request.urlopen(request, timeout=seconds) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        return f"cannot reach it: {exc.reason}"
    except (TimeoutError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None


def _header(value: str) -> str:
    return os.environ[value[4:]] if value.startswith("env:") else value

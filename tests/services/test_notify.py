"""Webhook notifications against a real HTTP server on 127.0.0.1: one message per alert
opened or closed and per retrain decision, none lost while the server is down, none sent
twice, a hanging webhook timed out, a rate limit that delays and never drops."""

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from perfwatch.services import notify
from perfwatch.services.monitor import run_all
from tests.workspace import Workspace, production


class Hook:
    """A webhook receiver on 127.0.0.1 that can be stopped and started on the same port."""

    def __init__(self, *, hang: float = 0.0) -> None:
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.hang = hang
        self.port = 0
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> "Hook":
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hook.hang:
                    time.sleep(hook.hang)
                hook.received.append(json.loads(body))
                hook.headers.append(dict(self.headers))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T000/secret-path-token"


class Clock:
    """The notifier's clock, moved forward by the test (retries and rate limits wait on it)."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead

    def advance(self, seconds: float) -> None:
        self.ahead += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    ticking = Clock()
    monkeypatch.setattr(notify, "utcnow", ticking)
    return ticking


@pytest.fixture
def hook() -> Iterator[Hook]:
    receiver = Hook().start()
    yield receiver
    receiver.stop()


def webhook_workspace(
    tmp_path: Path, artifacts: Path, url: str, store: str, **options: Any
) -> Workspace:
    lines = [f'url = "{url}"', 'headers = { Authorization = "env:HOOK_TOKEN" }']
    lines += [f"{key} = {json.dumps(value)}" for key, value in options.items()]
    return Workspace.create(
        tmp_path / "ws", artifacts, store, extra="[[webhooks]]\n" + "\n".join(lines)
    )


def alert_events(ws: Workspace) -> set[str]:
    """What the store says happened: every alert opened, and every one closed."""
    with ws.engine().connect() as connection:
        rows = connection.execute(text("SELECT id, closed_at FROM alert")).all()
    return {f"alert:{i}:opened" for i, _ in rows} | {f"alert:{i}:closed" for i, c in rows if c}


def shifted_fleet(ws: Workspace) -> None:
    """Cycles over a covariate shift: performance and drift alerts open."""
    settings = ws.settings()
    engine = ws.engine()
    notify.watch(engine, settings)  # as `perfwatch run` does before its first cycle
    fleet = production(12, scenario="covariate_shift", shift_day=3)
    for day, rows in fleet.groupby(fleet.timestamp.dt.date):
        ws.drop(rows, f"{day}.parquet")
        assert all(r.status == "ok" for r in run_all(engine, settings))


def delivered_events(hook: Hook) -> list[str]:
    return [
        f"alert:{m['alert']['id']}:{m['event'].split('_')[1]}"
        for m in hook.received
        if "alert" in m
    ]


def test_a_webhook_that_was_down_gets_every_message_once_when_it_returns(
    tmp_path: Path, artifacts: Path, sqlite_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "Bearer sekret")
    hook = Hook().start()
    hook.stop()  # the server is down while the alerts open
    ws = webhook_workspace(tmp_path, artifacts, hook.url, sqlite_url)
    shifted_fleet(ws)
    down = notify.deliver(ws.engine(), ws.settings())
    assert down.delivered == 0 and down.failed == 1, "one attempt; the rest wait behind it"
    with ws.engine().connect() as connection:
        pending, error = connection.execute(
            text("SELECT count(*), max(last_error) FROM notification WHERE delivered_at IS NULL")
        ).one()
    expected = alert_events(ws)
    assert expected and pending == len(expected)
    assert "cannot reach it" in error and "secret-path-token" not in error

    hook.start()  # back on the same port
    try:
        assert notify.deliver(ws.engine(), ws.settings()).delivered == 0, "retried after a wait"
        clock.advance(notify.FIRST_RETRY.total_seconds())
        back = notify.deliver(ws.engine(), ws.settings())
        again = notify.deliver(ws.engine(), ws.settings())
    finally:
        hook.stop()
    assert back.delivered == len(expected) and again.delivered == 0
    assert sorted(delivered_events(hook)) == sorted(expected), "each event once, none lost"
    assert all(m["text"].startswith("perfwatch · press: alert") for m in hook.received)
    assert {h["Authorization"] for h in hook.headers} == {"Bearer sekret"}


def test_a_retrain_decision_is_announced(
    tmp_path: Path, artifacts: Path, sqlite_url: str, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    from perfwatch.services.retrain_job import run_retrain

    monkeypatch.setenv("HOOK_TOKEN", "t")
    ws = webhook_workspace(tmp_path, artifacts, hook.url, sqlite_url, max_per_minute=100)
    fleet = production(16, scenario="covariate_shift", shift_day=4)
    ws.drop_days(fleet)
    ws.drop_labels(fleet[["id", "failure"]].iloc[: 14 * 800], "log.parquet")
    engine, settings = ws.engine(), ws.settings()
    notify.watch(engine, settings)
    run_all(engine, settings)
    run = run_retrain(engine, settings, settings.models[0], force=True)
    assert run is not None and run.decision in {"promoted", "rejected"}
    notify.deliver(engine, settings)
    retrains = [m for m in hook.received if "retrain" in m]
    assert [m["event"] for m in retrains] == [f"retrain_{run.decision}"]
    assert retrains[0]["retrain"]["run"] == run.id and run.decision in retrains[0]["text"]


def test_a_hanging_webhook_times_out_and_is_retried(
    tmp_path: Path, artifacts: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "t")
    hanging = Hook(hang=20).start()
    try:
        ws = webhook_workspace(tmp_path, artifacts, hanging.url, sqlite_url, timeout="1s")
        shifted_fleet(ws)
        started = time.monotonic()
        outcome = notify.deliver(ws.engine(), ws.settings())
        waited = time.monotonic() - started
    finally:
        hanging.hang = 0
        hanging.stop()
    assert outcome.failed == 1 and outcome.delivered == 0
    assert waited < 15, "the timeout, not the server, decided"
    with ws.engine().connect() as connection:
        attempts, error, due = connection.execute(
            text(
                "SELECT attempts, last_error, next_attempt_at > created_at FROM notification"
                " WHERE attempts > 0"
            )
        ).one()
    assert attempts == 1 and "timed out" in error and due


def test_the_rate_limit_delays_messages_and_drops_none(
    tmp_path: Path,
    artifacts: Path,
    sqlite_url: str,
    hook: Hook,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "t")
    ws = webhook_workspace(tmp_path, artifacts, hook.url, sqlite_url, max_per_minute=2)
    shifted_fleet(ws)
    expected = alert_events(ws)
    assert len(expected) > 2
    assert notify.deliver(ws.engine(), ws.settings()).delivered == 2
    assert notify.deliver(ws.engine(), ws.settings()).delivered == 0, "within the minute"
    for _ in range(len(expected)):
        clock.advance(61)
        notify.deliver(ws.engine(), ws.settings())
    assert sorted(delivered_events(hook)) == sorted(expected)


def test_a_missing_token_is_reported_by_name(
    tmp_path: Path, artifacts: Path, sqlite_url: str, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOOK_TOKEN", raising=False)
    ws = webhook_workspace(tmp_path, artifacts, hook.url, sqlite_url)
    shifted_fleet(ws)
    assert notify.deliver(ws.engine(), ws.settings()).failed == 1
    assert not hook.received
    with ws.engine().connect() as connection:
        error = connection.execute(text("SELECT max(last_error) FROM notification")).scalar()
    assert error == "environment variable HOOK_TOKEN is not set (a webhook header needs it)"

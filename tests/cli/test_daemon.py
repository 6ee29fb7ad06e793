"""The daemon as an operator runs it: the real `perfwatch run` in a subprocess, stopped
with real signals; its lease, heartbeat, JSON logs and Prometheus endpoint."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.cli.test_cli import perfwatch
from tests.workspace import Workspace, production

pytestmark = pytest.mark.slow


def start(
    ws: Workspace, *args: str, env: dict[str, str] | None = None, standby: bool = False
) -> subprocess.Popen[str]:
    """`perfwatch run`, its output appended to a log file (a pipe nobody reads fills up)."""
    log = open(ws.root / "daemon.log", "a")  # noqa: SIM115 (the child holds it)
    run = ["run", "--standby"] if standby else ["run"]
    return subprocess.Popen(
        [sys.executable, "-m", "perfwatch", "--config", str(ws.config), *args, *run],
        stdout=log,
        stderr=log,
        text=True,
        env={**os.environ, "NML_DISABLE_USAGE_LOGGING": "1", **(env or {})},
    )


def output(ws: Workspace) -> str:
    return (ws.root / "daemon.log").read_text()


@contextmanager
def running(
    ws: Workspace, *args: str, env: dict[str, str] | None = None, standby: bool = False
) -> Iterator[Any]:
    daemon = start(ws, *args, env=env, standby=standby)
    try:
        yield daemon
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"waited {timeout:.0f} s for {what}")


def status(ws: Workspace) -> dict[str, Any]:
    result = perfwatch("status", "--json", config=ws.config)
    return json.loads(result.stdout) if result.returncode == 0 else {}


def serving(ws: Workspace, daemon: subprocess.Popen[str]) -> bool:
    """The daemon holds the lease and has finished its first cycle."""
    now = status(ws)
    return bool(
        now
        and now["daemon"]["state"] == "running"
        and now["daemon"]["pid"] == daemon.pid
        and (now["models"][0]["last_cycle"] or {}).get("status") == "ok"
    )


def retrain_due(artifacts: Path, tmp_path: Path, sqlite_url: str, interval: str) -> Workspace:
    """A covariate-shifted fleet with its labels, after `run --once --no-retrain`: a
    retrain is due (and was not run)."""
    ws = Workspace.create(
        tmp_path / "ws", artifacts, sqlite_url, extra=f'[schedule]\ninterval = "{interval}"'
    )
    fleet = production(16, scenario="covariate_shift", shift_day=4)
    ws.drop_days(fleet)
    ws.drop_labels(fleet[["id", "failure"]].iloc[: 14 * 800], "log.parquet")
    assert perfwatch("run", "--once", "--no-retrain", config=ws.config).returncode == 0
    retrain = status(ws)["models"][0]["retrain"]
    assert retrain["state"] == "due" and retrain["count"] == 0
    return ws


def retrain_status(ws: Workspace) -> str | None:
    return (status(ws)["models"][0]["retrain"]["last"] or {}).get("status")


def test_the_daemon_retrains_in_a_worker_process_while_cycles_go_on(
    artifacts: Path, tmp_path: Path, sqlite_url: str
) -> None:
    ws = retrain_due(artifacts, tmp_path, sqlite_url, "5s")
    with running(ws) as daemon:
        wait_for("a retrain", lambda: retrain_status(ws) in ("finished", "failed"), timeout=180)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=120) == 0
    model = status(ws)["models"][0]
    assert model["retrain"]["last"]["decision"] == "promoted"  # as test_retrain_job's gate
    with create_engine(sqlite_url).connect() as connection:
        worker = connection.execute(text("SELECT pid FROM retrain_run")).scalar_one()
        cycles = connection.execute(text("SELECT count(*) FROM cycle")).scalar_one()
    assert worker != daemon.pid, "the retrain ran in a worker process, not in the daemon's"
    assert cycles >= 3, "monitoring cycles went on (one by run --once, then the daemon's)"
    log = output(ws)
    assert "alembic" not in log and " ERROR " not in log, log[-3000:]


def test_run_once_runs_a_due_retrain_like_a_daemon_tick(
    artifacts: Path, tmp_path: Path, sqlite_url: str
) -> None:
    ws = retrain_due(artifacts, tmp_path, sqlite_url, "1h")
    tick = perfwatch("run", "--once", config=ws.config)
    assert tick.returncode == 0, tick.stderr
    assert "press: ok" in tick.stdout and "press: challenger promoted" in tick.stdout
    model = status(ws)["models"][0]
    assert model["retrain"]["count"] == 1 and model["champion_version"] == 2


def test_one_daemon_per_store_and_status_shows_it(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    ws.drop_days(production(2))
    assert perfwatch("init", config=ws.config).returncode == 0
    assert status(ws)["daemon"] == {"state": "never_started"}
    with running(ws) as first:
        wait_for("the first daemon", lambda: serving(ws, first))
        second = start(ws)
        assert second.wait(timeout=60) == 2
        refusal = output(ws)
        assert f"a perfwatch daemon already runs on this store (pid {first.pid}" in refusal
        assert "hint:" in refusal
        once = perfwatch("run", "--once", config=ws.config)
        assert once.returncode == 2 and "already runs on this store" in once.stderr
        screen = perfwatch("status", config=ws.config).stdout
        assert f"daemon: running (pid {first.pid}" in screen
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
    assert status(ws)["daemon"]["state"] == "stopped"


def test_two_daemons_started_at_once_leave_one_running(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    assert perfwatch("init", config=ws.config).returncode == 0  # the schema, not the race
    with running(ws) as one, running(ws) as two:
        loser = wait_for(
            "one of the two to refuse",
            lambda: next((d for d in (one, two) if d.poll() is not None), None),
            timeout=60,
        )
        winner = two if loser is one else one
        assert loser.returncode == 2
        time.sleep(2)
        assert winner.poll() is None, "the other keeps running"
        assert status(ws)["daemon"]["pid"] == winner.pid
        winner.send_signal(signal.SIGTERM)
        assert winner.wait(timeout=60) == 0


def test_a_killed_daemon_is_replaced_at_once(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    ws.drop_days(production(1))
    with running(ws) as first:
        wait_for("the first daemon", lambda: serving(ws, first))
        first.kill()  # SIGKILL: no clean-up, the lease stays behind
        first.wait()
    assert status(ws)["daemon"]["pid"] == first.pid
    with running(ws) as second:
        wait_for("the second daemon to take over", lambda: serving(ws, second), timeout=60)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0


def test_a_standby_daemon_shows_itself_and_leads_once_the_leader_is_killed(
    sqlite_workspace: Workspace,
) -> None:
    ws = sqlite_workspace
    ws.drop_days(production(2))
    with running(ws) as leader:
        wait_for("the leader", lambda: serving(ws, leader))  # else the standby might lead
        with running(ws, standby=True) as standby:
            wait_for(
                "the standby", lambda: [s["pid"] for s in status(ws)["standby"]] == [standby.pid]
            )
            screen = perfwatch("status", config=ws.config).stdout
            assert f"standby on {socket.gethostname()} (pid {standby.pid})" in screen
            with running(ws, standby=True) as other:  # a standby stopped while it waits
                wait_for("two standbys", lambda: len(status(ws)["standby"]) == 2)
                other.send_signal(signal.SIGTERM)
                assert other.wait(timeout=60) == 0
            assert [s["pid"] for s in status(ws)["standby"]] == [standby.pid]
            leader.kill()  # SIGKILL: no clean-up, the lease stays behind
            leader.wait()
            ws.drop_days(production(2, start_day=2))  # while nobody leads
            wait_for(
                "the standby to lead and take in the new files",
                lambda: serving(ws, standby) and not list(ws.inbox.glob("*.parquet")),
                timeout=90,
            )
            assert status(ws)["standby"] == []
            standby.send_signal(signal.SIGTERM)
            assert standby.wait(timeout=60) == 0
    with create_engine(ws.store).connect() as connection:
        rows, batches = connection.execute(
            text("SELECT sum(rows), count(*) FROM batch WHERE status = 'ingested'")
        ).one()
    assert (rows, batches) == (4 * 800, 4), "every file once"
    assert "this daemon leads now" in output(ws)


def test_sigterm_during_a_retrain_stops_it_cleanly_and_keeps_the_champion(
    artifacts: Path, tmp_path: Path, sqlite_url: str
) -> None:
    ws = retrain_due(artifacts, tmp_path, sqlite_url, "2s")
    slow = {"PERFWATCH_FAULTS": "slow_boosting=0.2"}  # 200 rounds: 40 s, time to interrupt
    with running(ws, env=slow) as daemon:
        wait_for("the retrain to start", lambda: retrain_status(ws) == "running")
        time.sleep(1)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0, output(ws)[-3000:]
    model = status(ws)["models"][0]
    assert model["champion_version"] == 1
    last = model["retrain"]["last"]
    assert last["status"] == "failed" and "stopped by a signal" in last["error"]
    run_folder = ws.root / "var" / "models" / "press" / "retrains" / "run-1"
    assert not list(run_folder.glob("*.joblib*")), "no artifact, whole or half"
    with create_engine(sqlite_url).connect() as connection:
        versions = connection.execute(text("SELECT count(*) FROM model_version")).scalar_one()
    assert versions == 1


def test_a_second_signal_stops_at_once_and_the_next_start_retries(
    artifacts: Path, tmp_path: Path, sqlite_url: str
) -> None:
    ws = retrain_due(artifacts, tmp_path, sqlite_url, "2s")
    slow = {"PERFWATCH_FAULTS": "slow_boosting=120"}  # a warm stop would wait 2 minutes
    with running(ws, env=slow) as daemon:
        wait_for("the retrain to start", lambda: retrain_status(ws) == "running")
        time.sleep(5)  # the worker has read its rows and sits in its first boosting round
        daemon.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # two signals at once would reach Python's handler as one
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 1
    # the worker was killed mid-round, before it could record anything: left 'running'
    assert status(ws)["models"][0]["retrain"]["last"]["status"] == "running"
    with running(ws) as again:  # marks the dead worker's run failed, and retrains
        wait_for(
            "the retrain to be retried",
            lambda: (
                status(ws)["models"][0]["retrain"]["count"] == 2
                and status(ws)["models"][0]["retrain"]["last"]["status"] == "finished"
            ),
            timeout=180,
        )
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=60) == 0
    with create_engine(sqlite_url).connect() as connection:
        first = connection.execute(text("SELECT status, error FROM retrain_run WHERE id = 1")).one()
    assert first.status == "failed" and first.error


def test_json_logs_name_the_model_on_every_line_about_it(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    ws.drop_days(production(2))
    ws.drop(production(1, start_day=5).drop(columns=["torque"]), "broken.parquet")
    result = perfwatch("--log-format", "json", "--verbose", "run", "--once", config=ws.config)
    assert result.returncode == 0
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message", "model"} <= set(x) for x in lines)
    about = [x for x in lines if "press" in x["message"]]
    assert about and all(x["model"] == "press" for x in about)
    assert any("broken.parquet" in x["message"] and x["level"] == "warning" for x in lines)


def test_the_prometheus_endpoint_serves_the_stores_figures(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ws.config.write_text(f"metrics_port = {port}\n" + ws.config.read_text())
    fleet = production(3)
    ws.drop_days(fleet)
    ws.drop_labels(fleet[["id", "failure"]], "labels.parquet")
    with running(ws) as daemon:
        wait_for("the first cycle", lambda: serving(ws, daemon))
        scraped = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
    samples = _samples(scraped.decode())
    model = status(ws)["models"][0]
    estimate = model["latest_complete_estimate"]
    for metric, figures in estimate["metrics"].items():
        labels = f'metric="{metric}",model="press"'
        assert samples[f"perfwatch_estimated_metric{{{labels}}}"] == pytest.approx(figures["value"])
        # as `status` says: here every chunk is judged at once, so none is adjusted
        adjusted = samples.get(f"perfwatch_adjusted_metric{{{labels}}}")
        assert figures["adjusted"] is None and adjusted is None
    assert samples['perfwatch_rows_ingested_total{model="press"}'] == model["rows_ingested"]
    assert samples['perfwatch_champion_version{model="press"}'] == 1
    assert samples['perfwatch_last_cycle_ok{model="press"}'] == 1
    assert samples['perfwatch_open_alerts{kind="performance",model="press"}'] == 0
    assert samples['perfwatch_open_alerts{kind="extrapolation",model="press"}'] == 0
    assert samples['perfwatch_estimate_reliable{model="press"}'] == 1
    outside = samples['perfwatch_out_of_domain_share{model="press"}']
    assert outside == estimate["out_of_domain_share"]
    assert samples["perfwatch_daemon_up"] == 1
    judged = model["latest_realized"]
    assert samples['perfwatch_label_coverage{model="press"}'] == judged["label_coverage"]
    assert samples['perfwatch_cycle_duration_seconds{model="press"}'] > 0
    dashboard = (Path(__file__).parents[2] / "deploy" / "grafana-dashboard.json").read_text()
    charted = set(re.findall(r"perfwatch_[a-z_]+", dashboard)) - {"perfwatch"}
    served = {name.split("{")[0] for name in samples}
    assert charted and charted <= served, "the example dashboard charts what is served"


def _samples(exposition: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    samples = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return samples


def test_a_store_that_cannot_be_opened_stops_the_daemon_at_start(tmp_path: Path) -> None:
    config = tmp_path / "perfwatch.toml"
    config.write_text(
        'store = "postgresql+psycopg://pw:hunter2@127.0.0.1:1/x"\n'
        '[[models]]\nname = "m"\ntarget = "y"\nfeatures = ["a"]\ninbox = "i"\n'
    )
    result = perfwatch("run", config=config)
    assert result.returncode != 0
    assert "error: cannot open store postgresql+psycopg://pw:***@127.0.0.1:1/x" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_the_daemon_delivers_what_a_dead_webhook_missed_once_it_returns(
    artifacts: Path, tmp_path: Path, sqlite_url: str
) -> None:
    from tests.services.test_notify import Hook

    hook = Hook().start()
    ws = Workspace.create(
        tmp_path / "ws",
        artifacts,
        sqlite_url,
        extra=f'[schedule]\ninterval = "1s"\n\n[[webhooks]]\nurl = "{hook.url}"',
    )
    fleet = production(12, scenario="covariate_shift", shift_day=3)
    days = [rows for _, rows in fleet.groupby(fleet.timestamp.dt.date)]
    with running(ws) as daemon:
        for day in days[:3]:
            ws.drop(day, f"{day.timestamp.min():%Y-%m-%d}.parquet")
        wait_for(
            "the first days", lambda: serving(ws, daemon) and not list(ws.inbox.glob("*.parquet"))
        )
        hook.stop()  # the webhook dies mid-run, while the shift opens alerts
        for day in days[3:]:
            ws.drop(day, f"{day.timestamp.min():%Y-%m-%d}.parquet")
        wait_for("failed deliveries", lambda: status(ws)["notifications"]["last_error"])
        hook.start()  # back on the same port
        wait_for("the backlog to drain", lambda: status(ws)["notifications"]["pending"] == 0)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
    hook.stop()
    with create_engine(sqlite_url).connect() as connection:
        alerts = connection.execute(text("SELECT id, closed_at FROM alert")).all()
    expected = {f"alert:{i}:opened" for i, _ in alerts} | {
        f"alert:{i}:closed" for i, closed in alerts if closed
    }
    received = [
        f"alert:{m['alert']['id']}:{m['event'].removeprefix('alert_')}" for m in hook.received
    ]
    assert len(expected) >= 2 and sorted(received) == sorted(expected), "all of them, once"
    log = output(ws)
    assert f"webhook 127.0.0.1:{hook.port} failed" in log and "secret-path-token" not in log

"""Faults the daemon must ride out: the store going away during a run, a full disk."""

import errno
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from perfwatch.daemon import Daemon
from perfwatch.services import lease
from perfwatch.services.monitor import run_cycle
from tests.workspace import Workspace, production


def test_a_cycle_while_the_store_is_down_is_recorded_once_it_is_back(
    sqlite_workspace: Workspace,
) -> None:
    ws = sqlite_workspace
    engine, settings = ws.engine(), ws.settings()
    daemon = Daemon(engine, settings, ws.config, "text", ["press"], lease.acquire(engine))
    down = {"now": True}

    @event.listens_for(engine, "checkout")
    def refuse(*_args: Any) -> None:  # the injected fault: every connection attempt fails
        if down["now"]:
            raise OperationalError("connect", {}, Exception("connection refused"))

    engine.dispose()  # no pooled connection survives the outage
    ws.drop_days(production(1))
    daemon.cycle(settings.models[0])  # must not raise: the daemon stays alive
    daemon.heartbeat()
    assert len(daemon.unrecorded) == 1 and not daemon.done.is_set()
    down["now"] = False
    daemon.cycle(settings.models[0])  # the retry, next tick
    with engine.connect() as connection:
        cycles = connection.execute(text("SELECT status, error FROM cycle ORDER BY id")).all()
    assert [c.status for c in cycles] == ["ok", "failed"]  # recorded after the retry ran
    assert "connection refused" in cycles[1].error
    assert not list(ws.inbox.glob("*.parquet")), "the retry ingested the batch"
    assert not daemon.unrecorded


def test_a_full_disk_fails_the_cycle_cleanly_and_leaves_the_inbox(
    sqlite_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    ws = sqlite_workspace
    engine, settings = ws.engine(), ws.settings()
    run_cycle(engine, settings, settings.models[0])  # version 1 registered, nothing else
    dropped = sorted(p.name for p in ws.drop_days(production(2)))
    real_write = pq.write_table

    def disk_full(table: Any, where: Any, **options: Any) -> None:
        real_write(table.slice(0, 10), where, **options)  # some bytes made it to disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", disk_full)
    report = run_cycle(engine, settings, settings.models[0])
    assert report.status == "failed" and "No space left on device" in (report.error or "")
    assert sorted(p.name for p in ws.inbox.glob("*.parquet")) == dropped, "inbox untouched"
    batches = ws.root / "var" / "batches"
    assert not [p for p in batches.rglob("*") if p.is_file()], "no half-written file"
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM batch")).scalar_one() == 0

    monkeypatch.setattr(pq, "write_table", real_write)  # space again
    again = run_cycle(engine, settings, settings.models[0])
    assert again.status == "ok" and again.rows == 2 * 800
    assert not list(ws.inbox.glob("*.parquet"))


def test_a_failing_model_does_not_hold_up_the_others(
    tmp_path: Path, artifacts: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    broken = (
        '[[models]]\nname = "broken"\ntarget = "failure"\nfeatures = ["torque"]\n'
        'inbox = "inbox-broken"\ninitial_model = "artifacts/missing.joblib"\n'
        'reference = "artifacts/reference.parquet"\n'
    )
    ws = Workspace.create(tmp_path / "ws", artifacts, sqlite_url, extra=broken)
    ws.drop_days(production(1))
    engine, settings = ws.engine(), ws.settings()
    daemon = Daemon(engine, settings, ws.config, "text", ["broken", "press"], lease.acquire(engine))
    for model in settings.models:  # the scheduler runs each model's job on its own
        daemon.cycle(model)
    with engine.connect() as connection:
        cycles = dict(
            connection.execute(
                text("SELECT m.name, c.status FROM cycle c JOIN model m ON m.id = c.model_id")
            ).all()
        )
    assert cycles == {"broken": "failed", "press": "ok"}
    [failure] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert failure.startswith("broken: cycle failed: model file") and "missing.joblib" in failure

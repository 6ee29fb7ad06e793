"""The crash harness (issue 5): a seeded scenario fed to the real daemon day by day, the
daemon killed with SIGKILL at random moments and restarted each time, then the store
compared with an uninterrupted run of the same scenario.

    ./dev crash --kills 100        # the long run (about 5 minutes on 2 cores)
    ./dev crash --kills 8 --days 14

Kills are of two kinds, drawn from the seed: a SIGKILL from outside after a random delay
(anywhere: start-up, ingestion, estimation, label matching, between jobs), and a kill the
daemon injects on itself at a named point (PERFWATCH_FAULTS): committing or moving batch
files, committing labels, before realized metrics, feature drift, alerts or the retrain
policy, and inside a retrain worker (during boosting, before registering). Every day
brings a batch file, the labels of the batches of a week before, and on one day a broken
file. The covariate shift makes a retrain due midway, so retraining is killed too.

With `--standby` a second daemon (`run --standby`) waits beside the leader all along:
when the leader dies, the standby takes over (a new standby starts in its place) instead
of the leader being restarted.

At the end, for both runs: every row of every batch stored exactly once, every inbox file
in processed/ or quarantine/, no half-written file, the same estimates, realized metrics
and versions. Exit 0 when all hold.
"""

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

# where the daemon kills itself when told to: step boundaries (stopping.check) and the
# points inside steps (faults.reach)
FAULT_POINTS = [
    "committing batches",
    "moving batch files",
    "labels",
    "committing labels",
    "realized metrics",
    "feature drift",
    "alerts",
    "the retrain policy",
    "training",
    "the next boosting round#60",
    "registering the challenger",
]
RETRAIN_KILL = "the next boosting round#60"
LABEL_DELAY = 7  # days
SETTLE_TIMEOUT = 240  # seconds a day may take, kills included


@dataclass
class Run:
    folder: Path
    wanted: int = 0  # kills to make
    always: tuple[str, ...] = ()  # fault points that must fire once in the run
    kills: int = 0
    standby: bool = False  # a standby daemon takes over from each killed leader
    spare: subprocess.Popen[bytes] | None = None  # the standby waiting now
    restarts: int = 0
    started: float = 0.0  # when the running daemon was started


def replay(
    folder: Path,
    artifacts: Path,
    *,
    days: int,
    kills: int,
    seed: int,
    always: tuple[str, ...] = (RETRAIN_KILL,),
    standby: bool = False,
) -> Run:
    """Feed the scenario day by day to a daemon, killing it `kills` times on the way (and
    at each of the `always` points once: by default, a retrain worker midway); with
    `standby`, a standby daemon takes over each time."""
    from tests.workspace import Workspace, production

    ws = Workspace.create(folder, artifacts, f"sqlite:///{folder / 'perfwatch.db'}", extra=_EXTRA)
    fleet = production(days, scenario="covariate_shift", shift_day=4, seed=seed)
    per_day = [rows for _, rows in fleet.groupby(fleet.timestamp.dt.date)]
    ws.inbox.mkdir(parents=True, exist_ok=True)
    ws.labels.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    run = Run(folder, wanted=kills, always=always if kills else (), standby=standby)
    daemon = _start(ws, fault=None, run=run)
    if standby:
        _await_lead(ws, daemon)
        run.spare = _start(ws, fault=None, run=run, standby=True)
    try:
        for day, rows in enumerate(per_day):
            ws.drop(rows, f"day-{day:03d}.parquet")
            if day >= LABEL_DELAY:
                labeled = per_day[day - LABEL_DELAY]
                ws.drop_labels(labeled[["id", "failure"]], f"labels-{day:03d}.parquet")
            if day == days // 2:
                (ws.inbox / "broken.csv").write_text("id,timestamp,torque\nx,not a time,abc\n")
            daemon = _settle(ws, daemon, _kills_for(day, days, kills, rng, run), run)
        if run.spare is not None:  # first: it would take over from a leader stopping warmly
            run.spare.send_signal(signal.SIGTERM)
            if run.spare.wait(timeout=120) != 0:
                raise SystemExit(f"the standby did not stop warmly ({run.spare.returncode})")
        daemon.send_signal(signal.SIGTERM)
        if daemon.wait(timeout=120) == -signal.SIGKILL:  # an armed fault fired on the way out
            run.kills += 1
            daemon = _start(ws, fault=None, run=run)
            daemon = _settle(ws, daemon, [], run)
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=120)
        if daemon.returncode != 0:
            raise SystemExit(f"the daemon did not stop warmly at the end ({daemon.returncode})")
    finally:
        for process in (daemon, run.spare):
            if process is not None and process.poll() is None:
                process.kill()
    return run


_EXTRA = """\
[schedule]
interval = "1s"

[models.retrain]
cooldown = "30D"
min_labeled_rows = 1000
min_gain = -1.0  # the promotion path is what gets killed: taken whatever the figures
max_loss = 1.0
"""


def _kills_for(day: int, days: int, kills: int, rng: random.Random, run: Run) -> list[str | float]:
    """The kills to make today, to keep up with the target: fault point names, or delays
    for a SIGKILL from outside. An armed fault point may never be reached; on the last
    day only outside kills (always made) close the gap."""
    due = round(kills * (day + 1) / days) - run.kills
    last = day == days - 1
    return [
        rng.choice(FAULT_POINTS) if rng.random() < 0.5 and not last else rng.uniform(0.5, 6.0)
        for _ in range(max(due, 0))
    ]


def _start(
    ws: Any, *, fault: str | None, run: Run, standby: bool = False
) -> subprocess.Popen[bytes]:
    """A daemon armed with `fault` and with each of the run's `always` points that has not
    fired yet (they fire once per run, in whichever process reaches them first)."""
    from perfwatch.faults import slug

    env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
    run.restarts, run.started = run.restarts + 1, time.time()
    fired = {marker.name.split("-", 2)[2] for marker in run.folder.glob(".fault-*-*")}
    armed = [p for p in run.always if slug(p.partition("#")[0]) not in fired]
    armed += [fault] if fault else []
    env["PERFWATCH_FAULTS"] = ",".join(f"kill@{point}" for point in armed)
    env["PERFWATCH_FAULTS_ONCE"] = str(run.folder / f".fault-{run.restarts}-")
    log = open(run.folder / "daemon.log", "ab")  # noqa: SIM115 (the child holds it)
    return subprocess.Popen(
        [sys.executable, "-m", "perfwatch", "--config", str(ws.config), "run"]
        + (["--standby"] if standby else []),
        stdout=log,
        stderr=log,
        env=env,
    )


def _settle(
    ws: Any, daemon: subprocess.Popen[bytes], kills: list[str | float], run: Run
) -> subprocess.Popen[bytes]:
    """Wait until the day is fully processed, making this day's kills on the way."""
    dropped = time.time()
    deadline = time.monotonic() + SETTLE_TIMEOUT
    pending = list(kills)
    kill_at = None
    while time.monotonic() < deadline:
        if daemon.poll() is not None:  # killed (by us, or by its injected fault)
            run.kills += 1
            fault = next((k for k in pending if isinstance(k, str)), None)
            if fault:
                pending.remove(fault)
            if run.spare is None:
                daemon = _start(ws, fault=fault, run=run)
            else:  # the standby takes over; a new one (armed) waits in its place
                daemon = run.spare
                _await_lead(ws, daemon)
                run.spare = _start(ws, fault=fault, run=run, standby=True)
            continue
        if kill_at is None and pending and isinstance(pending[0], float):
            kill_at = time.monotonic() + float(pending.pop(0))
        if kill_at is not None and time.monotonic() >= kill_at:
            daemon.kill()
            daemon.wait()
            kill_at = None
            continue
        # a whole cycle by the running daemon, after the drop (so it also listens to signals)
        if not pending and kill_at is None and _settled(ws, max(dropped, run.started)):
            return daemon
        if pending and isinstance(pending[0], str) and daemon.poll() is None:
            # a fault point: restart the daemon armed with it (a kill from outside first)
            daemon.kill()
            daemon.wait()
        time.sleep(0.2)
    raise SystemExit(f"a day did not settle within {SETTLE_TIMEOUT} s: see {run.folder}")


def _await_lead(ws: Any, daemon: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Until `daemon` holds the store's lease (or died): a standby started before then
    could lead in its place."""
    from sqlalchemy import create_engine

    from perfwatch.store import reads

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and daemon.poll() is None:
        engine = create_engine(ws.store)
        try:
            with engine.connect() as connection:
                lease = reads.daemon(connection)
        except Exception:  # the schema is being created by the daemon starting up
            lease = None
        finally:
            engine.dispose()
        if lease is not None and lease["pid"] == daemon.pid and lease["stopped_at"] is None:
            return
        time.sleep(0.2)


def _settled(ws: Any, since: float) -> bool:
    """Inboxes empty, a whole cycle ran since then, and no retrain is due or running."""
    from datetime import datetime

    from sqlalchemy import create_engine

    from perfwatch.services.status import model_status

    if [p for p in (*ws.inbox.iterdir(), *ws.labels.iterdir()) if p.is_file()]:
        return False
    engine = create_engine(ws.store)
    try:
        model = model_status(engine, ["press"])[0]
    except Exception:  # the schema is being created by a daemon starting up
        return False
    finally:
        engine.dispose()
    cycle, retrain = model["last_cycle"], model["retrain"]
    if cycle is None or cycle["status"] != "ok" or cycle["finished_at"] is None:
        return False
    if retrain["state"] in ("due", "running") or (retrain["last"] or {}).get("status") == "running":
        return False
    return datetime.fromisoformat(cycle["started_at"]).timestamp() > since


# -- the comparison ------------------------------------------------------------------------


def facts(folder: Path) -> dict[str, Any]:
    """What must be the same after any number of kills."""
    import pandas as pd
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{folder / 'perfwatch.db'}")
    with engine.connect() as connection:

        def rows(query: str) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in connection.execute(text(query)).all()]

        found = {
            "batches": rows(
                "SELECT file_name, content_hash, status, rows FROM batch ORDER BY file_name"
            ),
            "versions": rows(
                "SELECT version, status, source, artifact_sha256 FROM model_version"
                " ORDER BY version"
            ),
            "estimates": _rounded(
                rows(
                    "SELECT e.chunk_start, e.metric, v.version, e.value, e.lower, e.upper,"
                    " e.alert, e.provisional FROM chunk_estimate e"
                    " JOIN model_version v ON v.id = e.version_id ORDER BY 1, 2, 3"
                )
            ),
            "realized": _rounded(
                rows(
                    "SELECT chunk_start, metric, value, concept_drift FROM chunk_realized"
                    " ORDER BY 1, 2"
                )
            ),
            "labels": rows("SELECT chunk_start, labeled FROM chunk_labels ORDER BY 1"),
            "retrains": rows(
                "SELECT status, decision, trigger FROM retrain_run WHERE status != 'failed'"
                " ORDER BY id"
            ),
            "stored_paths": rows("SELECT stored_path FROM batch WHERE stored_path IS NOT NULL"),
        }
    engine.dispose()
    stored = [folder / "var" / p for (p,) in found.pop("stored_paths")]
    ids = pd.concat([pd.read_parquet(p, columns=["id"]) for p in stored])["id"]
    found["stored_rows"] = len(ids)
    found["duplicated_ids"] = int(ids.duplicated().sum())
    inboxes = [folder / "inbox", folder / "labels"]
    found["inbox_left"] = sorted(p.name for i in inboxes for p in i.iterdir() if p.is_file())
    moved = [
        p.name
        for inbox in inboxes
        for where in ("processed", "quarantine")
        for p in (inbox / where).glob("*")
    ]
    found["moved"] = sorted(moved)
    found["half_written"] = sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith(".tmp")
    )
    return found


def _rounded(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [tuple(round(v, 9) if isinstance(v, float) else v for v in row) for row in rows]


def compare(calm: dict[str, Any], killed: dict[str, Any]) -> list[str]:
    """Differences that matter, as sentences (empty: the kills changed nothing)."""
    problems = [f"{key} differ" for key in calm if calm[key] != killed[key]]
    if killed["duplicated_ids"]:
        problems.append(f"{killed['duplicated_ids']} rows stored twice")
    if killed["inbox_left"]:
        problems.append(f"files left in the inbox: {killed['inbox_left']}")
    if len(killed["moved"]) != len(set(killed["moved"])):
        problems.append("a file was moved twice")
    if killed["half_written"]:
        problems.append(f"half-written files: {killed['half_written']}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", type=Path, help="keep both workspaces in this folder")
    parser.add_argument(
        "--standby", action="store_true", help="a standby daemon takes over from each killed one"
    )
    args = parser.parse_args(argv)
    from tests.workspace import build_artifacts

    with tempfile.TemporaryDirectory(prefix="perfwatch-crash-") as temporary:
        root = args.keep or Path(temporary)
        artifacts = build_artifacts(root / "artifacts")
        started = time.monotonic()
        calm = replay(root / "calm", artifacts, days=args.days, kills=0, seed=args.seed)
        print(f"uninterrupted run: {args.days} days in {time.monotonic() - started:.0f} s")
        started = time.monotonic()
        killed = replay(
            root / "killed",
            artifacts,
            days=args.days,
            kills=args.kills,
            seed=args.seed,
            standby=args.standby,
        )
        print(
            f"killed run: {killed.kills} SIGKILLs, {killed.restarts} starts,"
            f" {time.monotonic() - started:.0f} s"
        )
        if calm.kills:
            print(f"the uninterrupted daemon died {calm.kills} times: FAIL")
            return 1
        expected, found = facts(root / "calm"), facts(root / "killed")
        problems = compare(expected, found)
        print(
            f"batches {len(found['batches'])}, rows stored {found['stored_rows']:,},"
            f" estimates {len(found['estimates'])}, realized {len(found['realized'])},"
            f" versions {len(found['versions'])}, retrains {len(found['retrains'])}"
        )
        for problem in problems:
            print(f"  {problem}")
        print("crash harness: " + ("FAIL" if problems else "OK: the kills changed nothing"))
        return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

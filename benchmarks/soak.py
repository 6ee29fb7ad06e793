"""The daemon's soak (issue 5): many cycles of accelerated data time through the real
`perfwatch run`, watching its memory and open file handles.

    ./dev soak                 # 96 cycles: a day of 15-minute cycles (about 4 minutes)
    ./dev soak --cycles 300

Each cycle gets a new batch (a quarter day of the fleet, covariate shift included) and
the labels of the batch a week older, so every step runs: ingestion, estimation, labels,
realized metrics, feature drift, alerts, the retrain policy (and a retrain when due, in
its own worker process). The daemon's resident memory and open file descriptors are read
from /proc after every cycle. Bounds: once every step has run (labels begin at cycle 29;
the warm-up ends at cycle 40), memory grows by at most 10 % and open files by at most 5.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
WARM_UP = 40  # imports, first fits, and the labeled steps (from cycle 29) have run
RSS_GROWTH, FD_GROWTH = 0.10, 5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=96)
    args = parser.parse_args()
    from tests.workspace import Workspace, build_artifacts, production

    with tempfile.TemporaryDirectory(prefix="perfwatch-soak-") as temporary:
        root = Path(temporary)
        ws = Workspace.create(
            root / "ws",
            build_artifacts(root / "artifacts"),
            f"sqlite:///{root / 'ws' / 'perfwatch.db'}",
            extra='[schedule]\ninterval = "1s"',
        )
        days = args.cycles // 4 + 1
        fleet = production(days, scenario="covariate_shift", shift_day=days // 2)
        batches = [rows for _, rows in fleet.groupby(fleet.timestamp.dt.floor("6h"))]
        ws.inbox.mkdir(parents=True)
        ws.labels.mkdir(parents=True)
        daemon = subprocess.Popen(
            [sys.executable, "-m", "perfwatch", "--config", str(ws.config), "run"],
            stdout=subprocess.DEVNULL,
            stderr=open(root / "daemon.log", "wb"),  # noqa: SIM115 (the child holds it)
        )
        samples: list[tuple[int, float, int]] = []
        started = time.monotonic()
        try:
            for cycle in range(args.cycles):
                ws.drop(batches[cycle], f"batch-{cycle:04d}.parquet")
                if cycle >= 28:  # a week of quarter days earlier
                    labeled = batches[cycle - 28][["id", "failure"]]
                    ws.drop_labels(labeled, f"labels-{cycle:04d}.parquet")
                _wait_for_cycle(ws, daemon)
                samples.append((cycle + 1, _rss_mb(daemon.pid), _open_files(daemon.pid)))
        finally:
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(timeout=120)
        elapsed = time.monotonic() - started
    return _report(samples, elapsed, code)


def _wait_for_cycle(ws: object, daemon: subprocess.Popen[bytes]) -> None:
    """Until the daemon has taken the new files and finished a cycle after that."""
    inboxes = [ws.inbox, ws.labels]  # type: ignore[attr-defined]
    dropped = time.time()
    from sqlalchemy import create_engine

    from perfwatch.services.status import model_status

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise SystemExit(f"the daemon died (exit {daemon.returncode})")
        if not [p for inbox in inboxes for p in inbox.iterdir() if p.is_file()]:
            engine = create_engine(ws.store)  # type: ignore[attr-defined]
            try:
                cycle = model_status(engine, ["press"])[0]["last_cycle"]
            finally:
                engine.dispose()
            if cycle and cycle["finished_at"] and _after(cycle["started_at"], dropped):
                return
        time.sleep(0.2)
    raise SystemExit("no cycle within 300 s")


def _after(iso: str, moment: float) -> bool:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp() > moment


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmRSS in /proc")


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _report(samples: list[tuple[int, float, int]], elapsed: float, code: int) -> int:
    warm = samples[min(WARM_UP, len(samples)) - 1]
    last = samples[-1]
    peak_rss = max(s[1] for s in samples[WARM_UP - 1 :])
    fds = [s[2] for s in samples[WARM_UP - 1 :]]
    growth = (peak_rss - warm[1]) / warm[1]
    print(f"{len(samples)} cycles in {elapsed:.0f} s; the daemon exited {code} on SIGTERM")
    for cycle, rss, files in [*samples[:: max(1, len(samples) // 8)], last]:
        print(f"  after cycle {cycle:>4}: RSS {rss:7.1f} MB, open files {files}")
    rss_ok = growth <= RSS_GROWTH
    fd_ok = max(fds) - warm[2] <= FD_GROWTH
    print(
        f"memory after cycle {warm[0]}: {warm[1]:.1f} MB, peak after it {peak_rss:.1f} MB"
        f" ({growth:+.1%}, bound +{RSS_GROWTH:.0%}) {'OK' if rss_ok else 'OVER'}"
    )
    print(
        f"open files after cycle {warm[0]}: {warm[2]}, then {min(fds)}..{max(fds)}"
        f" (bound +{FD_GROWTH}) {'OK' if fd_ok else 'OVER'}"
    )
    return 0 if rss_ok and fd_ok and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

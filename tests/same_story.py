"""Behaviour unchanged (issue 13's acceptance): the demo told by an earlier revision and
by the working tree, with the same seed, gives the same days, status screen, `status --json`
and `history --json`.

    ./dev story 90113c3                  # the commit before issue 13, against the work tree
    ./dev story 90113c3 --days 20 --scenario concept_drift

Each side runs the real CLI in a subprocess, the earlier one from a `git worktree` of
that revision (its `src/` first on the path, its own migrations and example config).
What differs between two honest runs is masked: the workspace folder, wall-clock times
(the store stamps when a cycle ran), and durations. Numbers in the JSON documents are
compared to `--tolerance` (default 0: to the last digit), so a change that computes the
same figures another way (issue 14's arithmetic) can show it computes them to 1e-9.
Exit 0 when both stories are the same.
"""

import argparse
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# what two honest runs of the same story do not share: the wall clock (the simulated
# fleet's data times are months away from today) and how long steps took
TODAY = datetime.now(UTC).date()
WALL_CLOCK = re.compile(
    rf"({TODAY}|{TODAY + timedelta(days=1)})[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(\+00:00| UTC)?"
)
DURATION = re.compile(r'("(duration|seconds)[a-z_]*": )[0-9.e-]+')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revision", help="the earlier revision (a commit, tag or branch)")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--scenario", default="heat_wave")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tolerance", type=float, default=0.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="perfwatch-story-") as tmp:
        earlier = Path(tmp) / "earlier"
        _git("worktree", "add", "--detach", str(earlier), args.revision)
        # the installed package maps these two to this checkout; the earlier revision's own
        for package, folder in (("migrations", "migrations"), ("examples", "config")):
            (earlier / "src" / "perfwatch" / package).symlink_to(earlier / folder)
        try:
            before = _story(earlier / "src", Path(tmp) / "before", args)
        finally:
            _git("worktree", "remove", "--force", str(earlier))
        after = _story(ROOT / "src", Path(tmp) / "after", args)
    different = [name for name in before if not _same(before[name], after[name], args.tolerance)]
    for name in different:
        sys.stdout.writelines(
            difflib.unified_diff(
                before[name].splitlines(keepends=True),
                after[name].splitlines(keepends=True),
                f"{args.revision}: {name}",
                f"work tree: {name}",
            )
        )
    summary = ", ".join(f"{name} ({len(text.splitlines())} lines)" for name, text in after.items())
    same = f"the same (numbers to {args.tolerance:g})" if args.tolerance else "identical"
    print(f"{'DIFFERENT' if different else same}: {summary}")
    return 1 if different else 0


def _story(src: Path, workspace: Path, args: argparse.Namespace) -> dict[str, str]:
    """The demo's output (its days, the status screen), `status --json` and
    `history --json`, masked."""
    demo = _perfwatch(
        src,
        "demo",
        "--workspace",
        str(workspace),
        "--days",
        str(args.days),
        "--scenario",
        args.scenario,
        "--seed",
        str(args.seed),
    )
    config = ["--config", str(workspace / "perfwatch.toml")]
    status = json.loads(_perfwatch(src, *config, "status", "--json"))
    history = json.loads(_perfwatch(src, *config, "history", "press-failure", "--json"))
    return {
        "demo (days and status screen)": _masked(demo.split("\nworkspace:")[0], workspace),
        "status --json": _masked(_dumped(status), workspace),
        "history --json": _masked(_dumped(history), workspace),
    }


def _same(before: str, after: str, tolerance: float) -> bool:
    """Equal texts, or (with a tolerance) JSON documents equal but for numbers that differ
    by at most `tolerance`."""
    if before == after or not tolerance or not before.startswith(("{", "[")):
        return before == after
    return _close(json.loads(before), json.loads(after), tolerance)


def _close(a: Any, b: Any, tolerance: float) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tolerance) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tolerance) for x, y in zip(a, b, strict=True))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        return abs(a - b) <= tolerance
    return bool(a == b)


def _perfwatch(src: Path, *arguments: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(src), "NML_DISABLE_USAGE_LOGGING": "1"}
    env["COLUMNS"] = "120"
    done = subprocess.run(
        [sys.executable, "-m", "perfwatch", *arguments],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, 1):  # status exits 1 on an open alert
        raise SystemExit(f"perfwatch {' '.join(arguments)} failed:\n{done.stderr}")
    return done.stdout


def _dumped(document: Any) -> str:
    return json.dumps(document, indent=1, sort_keys=True)


def _masked(text: str, workspace: Path) -> str:
    text = text.replace(str(workspace), "<workspace>")
    return DURATION.sub(r"\1<duration>", WALL_CLOCK.sub("<time>", text))


def _git(*arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(ROOT), *arguments], capture_output=True, text=True, check=check
    )


if __name__ == "__main__":
    sys.exit(main())

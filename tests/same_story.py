"""Behaviour unchanged (issue 13's acceptance): the demo told by an earlier revision and
by the working tree, with the same seed, gives the same days, status screen, `status --json`
and `history --json`.

    ./dev story 90113c3                  # the commit before issue 13, against the work tree
    ./dev story 90113c3 --days 20 --scenario concept_drift

Each side runs the real CLI in a subprocess, the earlier one from a `git worktree` of
that revision (its `src/` first on the path; migrations and the example config come from
this checkout, so the script refuses a revision where they differ). What differs between
two honest runs is masked: the workspace folder, wall-clock times (the store stamps
when a cycle ran), and durations. Exit 0 when both stories are identical.
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
    args = parser.parse_args()
    unchanged = ["migrations", "config/perfwatch.example.toml"]
    if _git("diff", "--quiet", args.revision, "--", *unchanged, check=False).returncode:
        print(f"{args.revision} has other migrations or example config: compare by hand")
        return 2
    with tempfile.TemporaryDirectory(prefix="perfwatch-story-") as tmp:
        earlier = Path(tmp) / "earlier"
        _git("worktree", "add", "--detach", str(earlier), args.revision)
        try:
            before = _story(earlier / "src", Path(tmp) / "before", args)
        finally:
            _git("worktree", "remove", "--force", str(earlier))
        after = _story(ROOT / "src", Path(tmp) / "after", args)
    different = [name for name in before if before[name] != after[name]]
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
    print(f"{'DIFFERENT' if different else 'identical'}: {summary}")
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

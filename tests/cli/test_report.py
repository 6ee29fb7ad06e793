"""`perfwatch report` as a user runs it, and the page in a real headless Chromium."""

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_cli import perfwatch
from tests.services.test_report import shifted
from tests.workspace import Workspace

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NO_CHROMIUM = "the browser test needs Debian's chromium (.ci/run installs it)"
HEADLESS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=15000",
]


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_every_chart_renders_in_chromium(
    sqlite_workspace: Workspace, tmp_path: Path, save_artifact: Any
) -> None:
    shifted(sqlite_workspace)
    target = tmp_path / "report.html"
    result = perfwatch("report", "press", "-o", str(target), config=sqlite_workspace.config)
    assert result.returncode == 0 and f"report: {target}" in result.stdout
    dom = _chromium(tmp_path, "--dump-dom", target.as_uri()).stdout
    charts = re.search(r'data-charts="(\d+)"', dom)
    rendered = re.search(r'data-rendered="(\d+)"', dom)
    assert charts and rendered and int(charts[1]) == 5
    assert rendered[1] == charts[1], "every chart drew its SVG"
    errors = re.search(r'<pre id="page-errors">(.*?)</pre>', dom, re.S)
    assert errors is not None and errors[1].strip() == "", f"JavaScript errors: {errors}"
    shot = tmp_path / "report.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,3600", target.as_uri())
    assert shot.stat().st_size > 50_000, "a screenshot with something on it"
    print(f"screenshot: {save_artifact(shot, 'report.png')}")


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"chromium-{len(list(tmp_path.glob('chromium-*')))}"
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *HEADLESS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_an_output_folder_that_does_not_exist_is_a_clear_error(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    assert perfwatch("init", config=sqlite_workspace.config).returncode == 0
    missing = tmp_path / "nowhere" / "report.html"
    result = perfwatch("report", "press", "-o", str(missing), config=sqlite_workspace.config)
    assert result.returncode == 2
    assert (
        f"the folder {missing.parent} does not exist" in result.stderr and "hint:" in result.stderr
    )


def test_a_folder_that_cannot_be_written_is_a_clear_error(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    assert perfwatch("init", config=sqlite_workspace.config).returncode == 0
    if os.geteuid() == 0:  # root writes through any mode bits: a read-only file system
        folder = Path("/sys")
    else:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o500)
    result = perfwatch(
        "report", "press", "-o", str(folder / "r.html"), config=sqlite_workspace.config
    )
    assert result.returncode == 2
    assert f"cannot write the report to {folder / 'r.html'}" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_model_lists_the_known_ones(sqlite_workspace: Workspace) -> None:
    assert perfwatch("init", config=sqlite_workspace.config).returncode == 0
    result = perfwatch("report", "presss", config=sqlite_workspace.config)
    assert result.returncode != 0
    assert "error: no model named 'presss'" in result.stderr
    assert "the config declares: press" in result.stderr

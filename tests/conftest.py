"""Shared fixtures: real stores (SQLite file, PostgreSQL schema), a trained model, workspaces.

PostgreSQL runs when PERFWATCH_TEST_POSTGRES holds a URL (.ci/run sets it); each test
gets its own schema, so runs never collide.
"""

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

from tests.workspace import Workspace, build_artifacts

# property tests: a quick look for people (`./dev test --fast`), a long one in CI
hypothesis_settings.register_profile("dev", max_examples=25)
hypothesis_settings.register_profile("ci", max_examples=300)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

POSTGRES = os.environ.get("PERFWATCH_TEST_POSTGRES")
NO_POSTGRES = (
    "PostgreSQL tests need PERFWATCH_TEST_POSTGRES=postgresql+psycopg://... (.ci/run sets it)"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'perfwatch.db'}"
        return
    if not POSTGRES:
        pytest.skip(NO_POSTGRES)
    yield from _postgres_schema(POSTGRES)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store' / 'perfwatch.db'}"


def _postgres_schema(url: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text

    schema = f"pw_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Training data, reference set and a trained LightGBM pipeline, built once per run."""
    return build_artifacts(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture
def workspace(tmp_path: Path, artifacts: Path, store_url: str) -> Workspace:
    """A deployment folder with a config, the model files and an empty store (both backends)."""
    return Workspace.create(tmp_path / "ws", artifacts, store_url)


@pytest.fixture
def sqlite_workspace(tmp_path: Path, artifacts: Path, sqlite_url: str) -> Workspace:
    return Workspace.create(tmp_path / "ws", artifacts, sqlite_url)


@pytest.fixture
def copy_artifacts(artifacts: Path, tmp_path: Path) -> Path:
    target = tmp_path / "artifacts"
    shutil.copytree(artifacts, target)
    return target


ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"  # kept by CI
_started = time.time()  # in the process that reports (with pytest-xdist, not a worker)


@pytest.fixture
def save_artifact() -> Any:
    """Keep a file a person should look at (a screenshot); its path ends the test log."""

    def save(source: Path, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        target = ARTIFACTS / name
        shutil.copy(source, target)
        return target

    return save


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The files saved in this run (by whichever worker process saved them)."""
    saved = ARTIFACTS.glob("*") if ARTIFACTS.is_dir() else []
    for path in sorted(p for p in saved if p.stat().st_mtime >= _started):
        terminalreporter.write_line(f"artifact: {path}")

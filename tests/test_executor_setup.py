"""What `[executor] kind = "dask"` tells an operator before any task runs."""

from pathlib import Path

import pytest

from perfwatch.config import load_settings
from perfwatch.errors import ClusterError
from perfwatch.executor import open_executor

CONFIG = """
store = "postgresql+psycopg://u@127.0.0.1:1/db"
[executor]
kind = "dask"
[[models]]
name = "press"
target = "failure"
features = ["a"]
inbox = "inbox"
"""


def settings(tmp_path: Path, environ: dict[str, str]) -> object:
    config = tmp_path / "perfwatch.toml"
    config.write_text(CONFIG)
    return load_settings(config, environ=environ)


def test_without_the_scheduler_address_it_says_where_to_give_it(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="needs the address of the Dask scheduler") as caught:
        open_executor(None, settings(tmp_path, {}))  # type: ignore[arg-type]
    assert "PERFWATCH_DASK_ADDRESS" in caught.value.hint
    assert caught.value.exit_code == 2


def test_an_unreachable_scheduler_is_named(tmp_path: Path) -> None:
    nowhere = {"PERFWATCH_DASK_ADDRESS": "tcp://127.0.0.1:9"}  # the discard port: nobody
    with pytest.raises(
        ClusterError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"
    ):
        open_executor(None, settings(tmp_path, nowhere), timeout=2)  # type: ignore[arg-type]

"""The crash harness, fast variant (a few kills); the long one is `./dev crash`."""

import signal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.cli.test_cli import perfwatch
from tests.crash import RETRAIN_KILL, compare, facts, replay
from tests.workspace import Workspace, production

pytestmark = pytest.mark.slow


def test_sigkills_at_random_moments_change_nothing(artifacts: Path, tmp_path: Path) -> None:
    calm = replay(tmp_path / "calm", artifacts, days=20, kills=0, seed=11)
    points = (RETRAIN_KILL, "committing batches", "committing labels", "feature drift")
    killed = replay(tmp_path / "killed", artifacts, days=20, kills=6, seed=11, always=points)
    assert calm.kills == 0 and killed.kills >= 6
    expected, found = facts(calm.folder), facts(killed.folder)
    assert compare(expected, found) == []
    assert found["stored_rows"] == 20 * 800 and found["duplicated_ids"] == 0
    assert len(found["retrains"]) == 1 and len(found["versions"]) == 2, "a retrain was promoted"
    with create_engine(f"sqlite:///{killed.folder / 'perfwatch.db'}").connect() as connection:
        killed_retrains = connection.execute(
            text("SELECT count(*) FROM retrain_run WHERE status = 'failed'")
        ).scalar_one()
        interrupted = connection.execute(
            text("SELECT count(*) FROM cycle WHERE status = 'interrupted'")
        ).scalar_one()
    assert killed_retrains >= 1, "a retrain was killed midway, then retried"
    assert interrupted >= 1, "cycles were killed midway"


def test_a_standby_takes_over_from_sigkilled_leaders_and_changes_nothing(
    artifacts: Path, tmp_path: Path
) -> None:
    calm = replay(tmp_path / "calm", artifacts, days=10, kills=0, seed=5)
    points = ("committing batches",)
    killed = replay(
        tmp_path / "killed", artifacts, days=10, kills=3, seed=5, always=points, standby=True
    )
    assert killed.kills >= 3
    found = facts(killed.folder)
    assert compare(facts(calm.folder), found) == []
    assert found["stored_rows"] == 10 * 800 and found["duplicated_ids"] == 0
    log = (killed.folder / "daemon.log").read_text()
    assert log.count("this daemon leads now") >= 3, "each time the standby took over"


@pytest.mark.parametrize("point", ["committing batches#3", "moving batch files#5"])
def test_a_kill_between_the_parts_of_a_big_file_loses_and_repeats_nothing(
    artifacts: Path, tmp_path: Path, point: str
) -> None:
    """A backfill file in 5 parts, the cycle SIGKILLed before the third part's commit (or
    after the last one's, before the file's move): the next cycle reads on from the first
    part not recorded, and the store ends as a calm cycle leaves it."""
    backfill = production(6)
    stores = {}
    for name, faults in (("calm", ""), ("killed", f"kill@{point}")):
        ws = Workspace.create(tmp_path / name, artifacts, f"sqlite:///{tmp_path / name}.db")
        ws.config.write_text("pass_rows = 1000\n" + ws.config.read_text())
        ws.drop(backfill, "backfill.parquet")
        if faults:
            killed = perfwatch("run", "--once", config=ws.config, env={"PERFWATCH_FAULTS": faults})
            assert killed.returncode == -signal.SIGKILL, killed.stderr
            assert (ws.inbox / "backfill.parquet").is_file(), "the file waits for its last part"
            assert _stored(ws)[2] == (2 if "#3" in point else 5), "the parts committed"
        run = perfwatch("run", "--once", config=ws.config)
        assert run.returncode == 0, run.stderr
        stores[name] = _stored(ws)
    assert stores["killed"] == stores["calm"]
    rows, repeats, batches, estimates, processed = stores["killed"]
    assert (rows, repeats, batches, processed) == (4_800, 0, 5, ["backfill.parquet"])
    assert len(estimates) == 6 * 3, "6 daily chunks, 3 metrics"


def _stored(ws: Workspace) -> tuple[object, ...]:
    """Rows stored, ids dropped as repeats, batches, estimates, and the files processed."""
    with create_engine(ws.store).connect() as connection:

        def one(query: str) -> object:
            return connection.execute(text(query)).scalar_one()

        return (
            one("SELECT sum(rows) FROM batch WHERE status = 'ingested'"),
            one("SELECT count(*) FROM data_quality_finding WHERE kind = 'duplicate_id'"),
            one("SELECT count(*) FROM batch"),
            connection.execute(
                text("SELECT chunk_start, metric, rows, round(value, 12) FROM chunk_estimate")
            ).all(),
            sorted(p.name for p in (ws.inbox / "processed").glob("*")),
        )

"""The crash harness, fast variant (a few kills); the long one is `./dev crash`."""

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.crash import RETRAIN_KILL, compare, facts, replay

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

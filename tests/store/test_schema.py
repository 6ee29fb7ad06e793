"""The schema comes only from migrations, and the models agree with them."""

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import TypeDecorator, inspect, text
from sqlmodel import SQLModel

from perfwatch.errors import StoreError
from perfwatch.store import db, queries, reads
from perfwatch.store.tables import ChunkEstimate, Model
from tests.workspace import placeholder_version


def test_upgrade_head_creates_every_table_and_models_agree(store_url: str) -> None:
    engine = db.open_engine(store_url)
    db.migrate(engine)
    assert set(SQLModel.metadata.tables) <= set(inspect(engine).get_table_names())
    with engine.begin() as connection:
        config = db.alembic_config()
        config.attributes["connection"] = connection
        command.check(config)  # raises if models and migrations differ


def test_schema_revision_constant_is_alembics_head() -> None:
    head = ScriptDirectory.from_config(db.alembic_config()).get_current_head()
    assert head == db.SCHEMA_REVISION


def test_migrate_twice_is_harmless(store_url: str) -> None:
    engine = db.open_engine(store_url)
    db.migrate(engine)
    db.migrate(engine)
    assert db.schema_revision(engine) == db.SCHEMA_REVISION


def test_an_unmigrated_store_is_refused_with_a_hint(store_url: str) -> None:
    with pytest.raises(StoreError, match="no perfwatch schema") as caught:
        db.require_current_schema(db.open_engine(store_url))
    assert "perfwatch init" in caught.value.hint


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    engine = db.open_engine(sqlite_url)
    db.migrate(engine)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_readers_are_not_blocked_by_an_open_write(sqlite_url: str) -> None:
    engine = db.open_engine(sqlite_url)
    db.migrate(engine)
    with engine.connect() as writer:
        writer.begin()
        writer.execute(text("INSERT INTO model (name, created_at) VALUES ('w', '2026-01-01')"))
        reader = db.open_engine(sqlite_url)
        with reader.connect() as connection:  # would wait 30 s on a rollback journal
            assert reads.model_ids(connection) == {}
        writer.rollback()


def _estimate(model_id: int, version_id: int, value: float) -> dict[str, object]:
    start = datetime(2026, 3, 2, tzinfo=UTC)
    return {
        "model_id": model_id,
        "version_id": version_id,
        "chunk_start": start,
        "chunk_end": start + timedelta(days=1),
        "metric": "roc_auc",
        "value": value,
        "alert": False,
        "provisional": True,
        "rows": 10,
        "estimated_at": datetime.now(UTC),
    }


def test_upserts_are_idempotent_and_times_stay_utc(store_url: str) -> None:
    engine = db.open_engine(store_url)
    db.migrate(engine)
    with db.transaction(engine) as session:
        model = Model(name="m")
        session.add(model)
        session.flush()
        version = placeholder_version(model.id)
        session.add(version)
        session.flush()
        ids = (model.id, version.id)
    for value in (0.9, 0.8):
        with db.transaction(engine) as session:
            queries.upsert(
                session=session,
                table=ChunkEstimate,
                rows=[_estimate(*ids, value)],
                keys=("model_id", "version_id", "chunk_start", "metric"),
            )
    with engine.connect() as connection:
        rows = reads.estimate_history(connection, ids[0])
    assert [r["value"] for r in rows] == [0.8]
    assert rows[0]["chunk_start"] == datetime(2026, 3, 2, tzinfo=UTC)
    assert rows[0]["chunk_start"].utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(sqlite_url: str) -> None:
    engine = db.open_engine(sqlite_url)
    db.migrate(engine)
    with pytest.raises(Exception, match="naive datetime"), db.transaction(engine) as session:
        session.add(Model(name="m", created_at=datetime(2026, 1, 1)))
        session.flush()
    with db.transaction(engine) as session:
        session.add(
            Model(name="m", created_at=datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=2))))
        )
    with db.transaction(engine) as session:
        stored = queries.find_model(session=session, name="m")
    assert stored is not None and stored.created_at == datetime(2025, 12, 31, 22, tzinfo=UTC)


def test_unreachable_store_message_hides_the_password() -> None:
    url = "postgresql+psycopg://perfwatch:s3cret-pw@127.0.0.1:1/perfwatch"
    with pytest.raises(StoreError) as caught:
        db.check_reachable(db.open_engine(url))
    assert "s3cret-pw" not in caught.value.message + caught.value.hint
    assert "perfwatch:***@127.0.0.1:1" in caught.value.message


def test_unknown_driver_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot use store URL"):
        db.open_engine("nosuchdb://u:pw@h/x")


def test_the_lean_read_views_match_the_tables() -> None:
    for view in reads.VIEWS:
        table = SQLModel.metadata.tables[view.name]
        for column in view.columns:
            assert column.name in table.columns, f"{view.name}.{column.name}"
            real = table.columns[column.name].type
            if isinstance(real, TypeDecorator) and not isinstance(column.type, TypeDecorator):
                real = real.impl  # SQLModel's AutoString is a String underneath
            assert isinstance(real, type(column.type)), f"{view.name}.{column.name}: {real!r}"


def test_the_migrations_build_the_tables_the_code_declares(tmp_path: Path) -> None:
    """Alembic's autogenerate finds nothing to change between a migrated store and the
    tables in perfwatch.store.tables (a column, table or index added to one only fails)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = db.open_engine(f"sqlite:///{tmp_path / 'store.db'}")
    db.migrate(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == []

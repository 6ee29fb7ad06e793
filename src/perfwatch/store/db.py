"""The one place that opens the store: engine, sessions, migrations, and friendly errors."""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from perfwatch.errors import StoreError

if TYPE_CHECKING:
    from sqlmodel import Session

# The newest migration in migrations/versions; a test checks it against Alembic's head,
# so `status` can check the schema without importing Alembic.
SCHEMA_REVISION = "0016_drift_tests"


def safe_url(url: str) -> str:
    """The store URL as it may be shown to a person: never with its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable store URL>"


def open_engine(url: str) -> Engine:
    """An engine for the store URL; SQLite runs in WAL mode so readers never wait on a cycle."""
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise StoreError(
            f"cannot use store URL {safe_url(url)}: {scrub(str(exc), url)}",
            hint="use sqlite:///path/to/perfwatch.db or postgresql+psycopg://user@host/db",
        ) from None
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL keeps commits durable across crashes
    cursor.close()


def scrub(message: str, url: str) -> str:
    """The first line of an error message, with the store's password masked."""
    password = _password(url)
    first_line = message.strip().splitlines()[0] if message.strip() else message
    return first_line.replace(password, "***") if password else first_line


def explain(exc: BaseException, url: str) -> str:
    """An exception as one line for a log or the store, without the store's password. A
    server store's lost or refused connection says so, with the server's words."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    lost = isinstance(exc, DBAPIError) and (
        exc.connection_invalidated
        or (isinstance(exc, OperationalError) and not url.startswith("sqlite"))
    )
    if lost:
        return scrub(f"the store was unreachable: {getattr(exc, 'orig', None) or exc}", url)
    return scrub(f"{type(exc).__name__}: {exc}", url)


def _password(url: str) -> str | None:
    try:
        return make_url(url).password
    except ArgumentError:
        return None


def check_reachable(engine: Engine) -> None:
    """Connect once; raise StoreError (without the password) when the store cannot be opened."""
    url = engine.url.render_as_string(hide_password=False)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except DBAPIError as exc:
        raise StoreError(
            f"cannot open store {safe_url(url)}: {scrub(str(exc.orig), url)}",
            hint="check that the database server runs and the URL (store / $PERFWATCH_STORE)"
            " names a database you may write to",
        ) from None


def schema_revision(engine: Engine) -> str | None:
    """The store's migration revision, or None when perfwatch never initialised it."""
    sqlite_file = _sqlite_file(engine)
    if sqlite_file is not None and not sqlite_file.exists():
        return None  # reading must not create an empty database file
    check_reachable(engine)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None


def require_current_schema(engine: Engine) -> None:
    """Raise StoreError unless the store is migrated to the revision this code expects."""
    revision = schema_revision(engine)
    if revision != SCHEMA_REVISION:
        found = "no perfwatch schema" if revision is None else f"schema revision {revision}"
        raise StoreError(
            f"store {safe_url(str(engine.url))} has {found}; this perfwatch needs"
            f" {SCHEMA_REVISION}",
            hint="run `perfwatch init` (it creates or migrates the store)",
        )


def migrate(engine: Engine) -> None:
    """Create or upgrade the schema to the newest migration (alembic upgrade head)."""
    sqlite_file = _sqlite_file(engine)
    if sqlite_file is not None:
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    check_reachable(engine)
    if schema_revision(engine) == SCHEMA_REVISION:
        return  # current: importing Alembic to learn so costs a cold `run --once` 0.5 s
    from alembic import command

    with _migrating(engine, sqlite_file), engine.begin() as connection:
        if sqlite_file is None:  # PostgreSQL: until this transaction ends
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('perfwatch:migrate'))"))
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")  # a no-op when another process just did it


@contextmanager
def _migrating(engine: Engine, sqlite_file: Path | None) -> Iterator[None]:
    """One migration at a time: two daemons started at once on a new store would both
    create its tables (PostgreSQL serialises them by an advisory lock, SQLite by a lock
    on a file beside the database)."""
    if sqlite_file is None:
        yield
        return
    import fcntl

    with open(sqlite_file.with_name(sqlite_file.name + ".migrate-lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _sqlite_file(engine: Engine) -> Path | None:
    database = engine.url.database
    if engine.url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)


@cache
def _script_location() -> str:
    return str(resources.files("perfwatch.migrations"))


def alembic_config() -> Any:
    """Alembic's config pointing at perfwatch's migrations (shipped as perfwatch.migrations)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", _script_location())
    return config


@contextmanager
def transaction(engine: Engine) -> Iterator["Session"]:
    """One unit of work (an ORM session): commits when the block ends, rolls back if it raises.

    SQLModel is imported here, not at the top: the read path (`status`) never needs it.
    """
    from sqlmodel import Session

    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise

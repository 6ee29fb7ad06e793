"""Alembic environment: perfwatch passes its own connection in `config.attributes`."""

from alembic import context
from sqlmodel import SQLModel

import perfwatch.store.tables  # noqa: F401  (registers every table on SQLModel.metadata)

target_metadata = SQLModel.metadata
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through perfwatch (perfwatch init), not bare alembic")

context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=True,  # SQLite can only ALTER tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

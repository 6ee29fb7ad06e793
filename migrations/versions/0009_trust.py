"""trust: the inputs each version's model takes (dtypes, categories), a failed skew check,
the bar (the threshold in force at version 1, kept across promotions), a model's chunking

Revision ID: 0009_trust
Revises: 0008_daemon
Create Date: 2026-12-02 01:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_trust"
down_revision = "0008_daemon"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inputs", sa.Text(), nullable=True))
    with op.batch_alter_table("cycle", schema=None) as batch_op:
        batch_op.add_column(sa.Column("skew_error", sa.Text(), nullable=True))
    with op.batch_alter_table("model", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bar_version_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("bar_set_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("chunking", sa.String(), nullable=True))
    with op.batch_alter_table("chunk_estimate", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bar", sa.Float(), nullable=True))
    with op.batch_alter_table("chunk_realized", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bar", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chunk_realized", schema=None) as batch_op:
        batch_op.drop_column("bar")
    with op.batch_alter_table("chunk_estimate", schema=None) as batch_op:
        batch_op.drop_column("bar")
    with op.batch_alter_table("model", schema=None) as batch_op:
        batch_op.drop_column("chunking")
        batch_op.drop_column("bar_set_at")
        batch_op.drop_column("bar_version_id")
    with op.batch_alter_table("cycle", schema=None) as batch_op:
        batch_op.drop_column("skew_error")
    with op.batch_alter_table("model_version", schema=None) as batch_op:
        batch_op.drop_column("inputs")

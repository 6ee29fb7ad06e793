"""daemon lease (one daemon per store, with its heartbeat) and webhook notifications (an outbox)

Revision ID: 0008_daemon
Revises: 0007_retrain_runs
Create Date: 2026-11-26 05:47:31.243545
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_daemon"
down_revision = "0007_retrain_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "daemon_lease",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("token", sa.String(), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "webhook_target",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("event", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["target"],
            ["webhook_target.key"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("target", "event"),
    )
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notification_pending", ["delivered_at", "next_attempt_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_pending")

    op.drop_table("notification")
    op.drop_table("webhook_target")
    op.drop_table("daemon_lease")

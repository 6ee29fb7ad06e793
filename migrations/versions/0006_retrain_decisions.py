"""the retrain policy's decisions, with their reasons

Revision ID: 0006_retrain_decisions
Revises: 0005_skew
Create Date: 2026-11-26 04:25:44.253388
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_retrain_decisions"
down_revision = "0005_skew"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "retrain_decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("trigger", sa.String(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("labeled_rows", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["model.id"],
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_version.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("retrain_decision", schema=None) as batch_op:
        batch_op.create_index("ix_retrain_decision_model", ["model_id", "decided_at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("retrain_decision", schema=None) as batch_op:
        batch_op.drop_index("ix_retrain_decision_model")

    op.drop_table("retrain_decision")

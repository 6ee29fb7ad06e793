"""retrain runs: trigger, policy, training-data manifest, gate, outcome (lineage)

Revision ID: 0007_retrain_runs
Revises: 0006_retrain_decisions
Create Date: 2026-11-26 04:30:52.240036
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_retrain_runs"
down_revision = "0006_retrain_decisions"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "retrain_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("parent_version_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("decision", sa.String(), nullable=True),
        sa.Column("trigger", sa.String(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("data_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("policy", sa.Text(), nullable=False),
        sa.Column("alerts", sa.Text(), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.Column("gate", sa.Text(), nullable=False),
        sa.Column("artifact_path", sa.String(), nullable=True),
        sa.Column("artifact_sha256", sa.String(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["model.id"],
        ),
        sa.ForeignKeyConstraint(
            ["parent_version_id"],
            ["model_version.id"],
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_version.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("retrain_run", schema=None) as batch_op:
        batch_op.create_index("ix_retrain_run_model", ["model_id", "started_at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("retrain_run", schema=None) as batch_op:
        batch_op.drop_index("ix_retrain_run_model")

    op.drop_table("retrain_run")

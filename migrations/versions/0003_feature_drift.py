"""feature drift per chunk: univariate and PCA reconstruction

Revision ID: 0003_feature_drift
Revises: 0002_labels
Create Date: 2026-11-26 03:45:55.272945
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_feature_drift"
down_revision = "0002_labels"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "chunk_drift",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("chunk_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("feature", sa.String(), nullable=False),
        sa.Column("method", sa.String(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("raw_alert", sa.Boolean(), nullable=False),
        sa.Column("alert", sa.Boolean(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["model.id"],
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_version.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_id", "version_id", "chunk_start", "feature"),
    )
    with op.batch_alter_table("chunk_drift", schema=None) as batch_op:
        batch_op.create_index(
            "ix_chunk_drift_model_chunk", ["model_id", "chunk_start"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("chunk_drift", schema=None) as batch_op:
        batch_op.drop_index("ix_chunk_drift_model_chunk")

    op.drop_table("chunk_drift")

"""alignment: each misalignment check of a production sample against a version's training
data and reference (`register --sample`, the demo), with its verdict and figures

Revision ID: 0015_alignment
Revises: 0014_adjusted
Create Date: 2026-12-03 12:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_alignment"
down_revision = "0014_adjusted"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alignment_check",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("sample_name", sa.String(), nullable=False),
        sa.Column("sample_sha256", sa.String(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(), nullable=False),
        sa.Column("figures", sa.Text(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["model.id"]),
        sa.ForeignKeyConstraint(["version_id"], ["model_version.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alignment_check_model", "alignment_check", ["model_id", "version_id"])


def downgrade() -> None:
    op.drop_index("ix_alignment_check_model", table_name="alignment_check")
    op.drop_table("alignment_check")

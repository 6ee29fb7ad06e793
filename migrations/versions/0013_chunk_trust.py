"""chunk_trust: whether each complete chunk's estimate can be trusted, per version (rows
outside the reference's support, a reference-vs-chunk classifier's ROC AUC)

Revision ID: 0013_chunk_trust
Revises: 0012_skew_every
Create Date: 2026-12-02 16:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_chunk_trust"
down_revision = "0012_skew_every"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chunk_trust",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("chunk_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("out_of_domain_share", sa.Float(), nullable=False),
        sa.Column("domain_auc", sa.Float(), nullable=True),
        sa.Column("reliable", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["model.id"]),
        sa.ForeignKeyConstraint(["version_id"], ["model_version.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_id", "version_id", "chunk_start"),
    )
    op.create_index("ix_chunk_trust_model_chunk", "chunk_trust", ["model_id", "chunk_start"])


def downgrade() -> None:
    op.drop_index("ix_chunk_trust_model_chunk", table_name="chunk_trust")
    op.drop_table("chunk_trust")

"""labels matched on arrival live in Parquet segments (label_chunk maps chunks to them);
once-held labels keep their row's served figures

Revision ID: 0004_label_segments
Revises: 0003_feature_drift
Create Date: 2026-11-26 03:57:51.169287
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_label_segments"
down_revision = "0003_feature_drift"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "label_chunk",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("label_file_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("chunk_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["label_file_id"],
            ["label_file.id"],
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["model.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("label_file_id", "chunk_start"),
    )
    with op.batch_alter_table("label_chunk", schema=None) as batch_op:
        batch_op.create_index(
            "ix_label_chunk_model_chunk", ["model_id", "chunk_start"], unique=False
        )

    with op.batch_alter_table("label", schema=None) as batch_op:
        batch_op.add_column(sa.Column("row_time", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("score", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("prediction", sa.Integer(), nullable=True))

    with op.batch_alter_table("label_file", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stored_path", sa.String(), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("label_file", schema=None) as batch_op:
        batch_op.drop_column("stored_path")

    with op.batch_alter_table("label", schema=None) as batch_op:
        batch_op.drop_column("prediction")
        batch_op.drop_column("score")
        batch_op.drop_column("row_time")

    with op.batch_alter_table("label_chunk", schema=None) as batch_op:
        batch_op.drop_index("ix_label_chunk_model_chunk")

    op.drop_table("label_chunk")

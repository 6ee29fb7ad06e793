"""delayed labels, realized metrics, concept-drift verdicts, alerts

Revision ID: 0002_labels
Revises: 0001_initial
Create Date: 2026-11-26 03:32:25.679756
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_labels"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cycle", schema=None) as batch_op:
        batch_op.add_column(sa.Column("labels", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("chunks_judged", sa.Integer(), nullable=False, server_default="0")
        )

    op.create_table(
        "alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("chunk_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_reason", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["model.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.create_index("ix_alert_model_opened", ["model_id", "opened_at"], unique=False)
        batch_op.create_index(
            "ux_alert_open",
            ["model_id", "kind", "subject"],
            unique=True,
            sqlite_where=sa.text("closed_at IS NULL"),
            postgresql_where=sa.text("closed_at IS NULL"),
        )

    op.create_table(
        "chunk_labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("chunk_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("chunk_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("labeled", sa.Integer(), nullable=False),
        sa.Column("computed_labeled", sa.Integer(), nullable=True),
        sa.Column("computed_rows", sa.Integer(), nullable=True),
        sa.Column("coverage", sa.Float(), nullable=True),
        sa.Column("mature", sa.Boolean(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["model.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_id", "chunk_start"),
    )
    op.create_table(
        "label_file",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.Column("repeated", sa.Integer(), nullable=False),
        sa.Column("conflicts", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["model.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_id", "content_hash"),
    )
    with op.batch_alter_table("label_file", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_label_file_model_id"), ["model_id"], unique=False)

    op.create_table(
        "chunk_realized",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("chunk_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("chunk_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metric", sa.String(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("sampling_error", sa.Float(), nullable=True),
        sa.Column("labeled_rows", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("estimated", sa.Float(), nullable=True),
        sa.Column("estimated_sampling_error", sa.Float(), nullable=True),
        sa.Column("out_of_band", sa.Boolean(), nullable=False),
        sa.Column("concept_drift", sa.Boolean(), nullable=False),
        sa.Column("magnitude", sa.Float(), nullable=True),
        sa.Column("impact", sa.Float(), nullable=True),
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
        sa.UniqueConstraint("model_id", "chunk_start", "metric"),
    )
    op.create_table(
        "label",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("label_file_id", sa.Integer(), nullable=False),
        sa.Column("row_id", sa.String(), nullable=False),
        sa.Column("target", sa.Integer(), nullable=False),
        sa.Column("labeled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("chunk_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("held_since", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["label_file_id"],
            ["label_file.id"],
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["model.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_id", "row_id"),
    )
    with op.batch_alter_table("label", schema=None) as batch_op:
        batch_op.create_index("ix_label_model_chunk", ["model_id", "chunk_start"], unique=False)

    op.create_table(
        "label_conflict",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("label_file_id", sa.Integer(), nullable=False),
        sa.Column("row_id", sa.String(), nullable=False),
        sa.Column("stored_target", sa.Integer(), nullable=False),
        sa.Column("new_target", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["label_file_id"],
            ["label_file.id"],
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["model.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("label_file_id", "row_id"),
    )
    with op.batch_alter_table("label_conflict", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_label_conflict_model_id"), ["model_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cycle", schema=None) as batch_op:
        batch_op.drop_column("chunks_judged")
        batch_op.drop_column("labels")

    with op.batch_alter_table("label_conflict", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_label_conflict_model_id"))

    op.drop_table("label_conflict")
    with op.batch_alter_table("label", schema=None) as batch_op:
        batch_op.drop_index("ix_label_model_chunk")

    op.drop_table("label")
    op.drop_table("chunk_realized")
    with op.batch_alter_table("label_file", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_label_file_model_id"))

    op.drop_table("label_file")
    op.drop_table("chunk_labels")
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_index(
            "ux_alert_open",
            sqlite_where=sa.text("closed_at IS NULL"),
            postgresql_where=sa.text("closed_at IS NULL"),
        )
        batch_op.drop_index("ix_alert_model_opened")

    op.drop_table("alert")

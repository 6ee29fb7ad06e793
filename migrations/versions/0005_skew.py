"""training-serving skew: served scores re-scored per cycle

Revision ID: 0005_skew
Revises: 0004_label_segments
Create Date: 2026-11-26 04:04:39.335630
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_skew"
down_revision = "0004_label_segments"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("cycle", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("skew_checked", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("skew_mismatched", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("skew_largest", sa.Float(), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("cycle", schema=None) as batch_op:
        batch_op.drop_column("skew_largest")
        batch_op.drop_column("skew_mismatched")
        batch_op.drop_column("skew_checked")

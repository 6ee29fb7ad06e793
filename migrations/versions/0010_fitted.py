"""fitted: each version's fitted CBPE as plain numbers (calibration breakpoints, sampling
error constants), applied by perfwatch's own per-chunk arithmetic without nannyml

Revision ID: 0010_fitted
Revises: 0009_trust
Create Date: 2026-12-02 05:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_fitted"
down_revision = "0009_trust"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fitted", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_version", schema=None) as batch_op:
        batch_op.drop_column("fitted")

"""skew_every: each cycle that re-scored served scores records for which version and
through which data time, so a cold `run --once` loads the champion only when a check is
due

Revision ID: 0012_skew_every
Revises: 0011_fitted_drift
Create Date: 2026-12-02 08:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_skew_every"
down_revision = "0011_fitted_drift"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cycle", schema=None) as batch_op:
        batch_op.add_column(sa.Column("skew_version_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("skew_through", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cycle", schema=None) as batch_op:
        batch_op.drop_column("skew_through")
        batch_op.drop_column("skew_version_id")

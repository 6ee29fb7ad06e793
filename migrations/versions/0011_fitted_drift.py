"""fitted_drift: each version's fitted drift calculators as plain numbers (reference
bins and shares, the PCA reconstruction, thresholds), applied without nannyml

Revision ID: 0011_fitted_drift
Revises: 0010_fitted
Create Date: 2026-12-02 08:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_fitted_drift"
down_revision = "0010_fitted"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fitted_drift", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_version", schema=None) as batch_op:
        batch_op.drop_column("fitted_drift")

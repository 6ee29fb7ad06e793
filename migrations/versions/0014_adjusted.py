"""adjusted: each complete chunk's delay-adjusted estimate beside CBPE's (its band, alert,
the labels it used, or why it is CBPE's)

Revision ID: 0014_adjusted
Revises: 0013_chunk_trust
Create Date: 2026-12-02 16:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_adjusted"
down_revision = "0013_chunk_trust"
branch_labels = None
depends_on = None

COLUMNS = (
    ("adjusted", sa.Float()),
    ("adjusted_lower", sa.Float()),
    ("adjusted_upper", sa.Float()),
    ("adjusted_alert", sa.Boolean()),
    ("adjusted_labels", sa.Integer()),
    ("adjusted_reason", sa.String()),
)


def upgrade() -> None:
    with op.batch_alter_table("chunk_estimate", schema=None) as batch_op:
        for name, kind in COLUMNS:
            batch_op.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chunk_estimate", schema=None) as batch_op:
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)

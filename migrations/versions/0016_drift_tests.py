"""drift_tests: a feature's drift may be a test's (ks, chi2, classifier, mmd): its
false-discovery-corrected p-value beside the statistic

Revision ID: 0016_drift_tests
Revises: 0015_alignment
Create Date: 2026-12-03 13:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_drift_tests"
down_revision = "0015_alignment"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chunk_drift", schema=None) as batch_op:
        batch_op.add_column(sa.Column("p_value", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chunk_drift", schema=None) as batch_op:
        batch_op.drop_column("p_value")

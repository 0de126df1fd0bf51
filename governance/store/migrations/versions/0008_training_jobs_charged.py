"""Training jobs record when they were charged: a job is charged before anything it made
is published (its model registered), so a job can be charged and still running.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("training_jobs", sa.Column("charged_at_us", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("training_jobs", "charged_at_us")

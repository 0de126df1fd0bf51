"""The privacy budget ledger.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_budgets",
        sa.Column("dataset_id", sa.Text(), primary_key=True),
        sa.Column("epsilon_total_micro", sa.BigInteger(), nullable=False),
        sa.Column("delta", sa.Float(), nullable=False),
        sa.Column("reserved_micro", sa.BigInteger(), nullable=False),
        sa.Column("spent_micro", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "privacy_ledger",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("dataset_id", sa.Text(), nullable=False),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("epsilon_micro", sa.BigInteger(), nullable=False),
        sa.Column("delta", sa.Float(), nullable=False),
        sa.Column("noise_multiplier", sa.Float(), nullable=True),
        sa.Column("sample_rate", sa.Float(), nullable=True),
        sa.Column("steps", sa.BigInteger(), nullable=True),
        sa.Column("accountant", sa.Text(), nullable=False),
        sa.Column("privacy_unit", sa.Text(), nullable=False),
        sa.Column("principal", sa.Text(), nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_privacy_ledger_dataset", "privacy_ledger", ["dataset_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_privacy_ledger_dataset", table_name="privacy_ledger")
    op.drop_table("privacy_ledger")
    op.drop_table("privacy_budgets")

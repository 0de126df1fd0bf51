"""Privacy budgets belong to the data: keyed by the raw upload's digest, shared by every
dataset made from it; ledger entries name their budget and the mechanism they charge.

Existing budgets of datasets made from the same bytes are merged: the smallest total (a
budget is never raised), but never below what they had already reserved and spent together
(their linear sum, a valid bound that the composing ledger keeps as a floor).

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The budget of each old row: the raw digest of its dataset, or its own id where the ledger
# held a budget for a dataset the catalog does not (written in SQL both dialects share).
_KEY = "COALESCE('sha256:' || d.raw_digest, 'dataset:' || b.dataset_id)"


def upgrade() -> None:
    op.create_table(
        "privacy_budget_datasets",
        sa.Column("dataset_id", sa.Text(), primary_key=True),
        sa.Column("budget_id", sa.Text(), nullable=False),
    )
    op.create_index("ix_privacy_budget_datasets_budget", "privacy_budget_datasets", ["budget_id"])
    op.execute(f"INSERT INTO privacy_budget_datasets (dataset_id, budget_id) SELECT b.dataset_id, {_KEY} FROM privacy_budgets b LEFT JOIN datasets d ON d.id = b.dataset_id")

    op.create_table(
        "privacy_budgets_v7",
        sa.Column("budget_id", sa.Text(), primary_key=True),
        sa.Column("dataset_id", sa.Text(), nullable=False),
        sa.Column("epsilon_total_micro", sa.BigInteger(), nullable=False),
        sa.Column("delta", sa.Float(), nullable=False),
        sa.Column("reserved_micro", sa.BigInteger(), nullable=False),
        sa.Column("spent_micro", sa.BigInteger(), nullable=False),
    )
    op.execute(
        "INSERT INTO privacy_budgets_v7 (budget_id, dataset_id, epsilon_total_micro, delta, reserved_micro, spent_micro) "
        "SELECT l.budget_id, MIN(b.dataset_id),"
        " CASE WHEN MIN(b.epsilon_total_micro) >= SUM(b.reserved_micro) + SUM(b.spent_micro) THEN MIN(b.epsilon_total_micro)"
        " ELSE SUM(b.reserved_micro) + SUM(b.spent_micro) END,"
        " MIN(b.delta), SUM(b.reserved_micro), SUM(b.spent_micro) "
        "FROM privacy_budgets b JOIN privacy_budget_datasets l ON l.dataset_id = b.dataset_id GROUP BY l.budget_id"
    )
    op.drop_table("privacy_budgets")
    op.rename_table("privacy_budgets_v7", "privacy_budgets")

    with op.batch_alter_table("privacy_ledger") as batch:
        batch.add_column(sa.Column("budget_id", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("mechanism", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("purpose", sa.Text(), nullable=False, server_default=""))
    op.execute(
        "UPDATE privacy_ledger SET budget_id = COALESCE((SELECT l.budget_id FROM privacy_budget_datasets l WHERE l.dataset_id = privacy_ledger.dataset_id),"
        " 'dataset:' || privacy_ledger.dataset_id)"
    )
    # Before this revision only DP-SGD runs were charged, each with its mechanism.
    op.execute("UPDATE privacy_ledger SET mechanism = 'subsampled-gaussian' WHERE kind = 'charge' AND noise_multiplier IS NOT NULL")
    op.create_index("ix_privacy_ledger_budget", "privacy_ledger", ["budget_id", "id"])


def downgrade() -> None:
    # Merged budgets cannot be split back into the per-dataset ones they came from.
    raise NotImplementedError("0007 cannot be downgraded: budgets of the same data were merged")

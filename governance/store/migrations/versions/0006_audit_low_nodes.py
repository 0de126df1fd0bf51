"""Audit log: perfect nodes below level 4 are no longer stored (folded from leaf hashes).

Stop every replica before upgrading: one from before this revision looks for the deleted rows.

Revision ID: 0006
Revises: 0005
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Level 4 matches governance.audit.storage.LOWEST_STORED_LEVEL at the time of writing; a
    # migration must not follow later edits of that constant.
    op.execute("DELETE FROM audit_nodes WHERE level < 4")


def downgrade() -> None:
    # The deleted rows are a cache of what audit_events.leaf_hash holds; readers from before
    # this revision would need them rebuilt, which a downgrade cannot do in SQL alone.
    raise NotImplementedError("0006 cannot be downgraded: rebuild audit_nodes from a newer Privet instead")

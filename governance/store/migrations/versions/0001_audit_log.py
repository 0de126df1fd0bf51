"""The audit log: events, Merkle nodes, the head row and signed checkpoints.

Revision ID: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("principal", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("decision", sa.Text(), nullable=False),
        sa.Column("policy_ids", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("leaf", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_audit_events_principal_seq", "audit_events", ["principal", "seq"])
    op.create_index("ix_audit_events_resource_seq", "audit_events", ["resource", "seq"])
    op.create_index("ix_audit_events_time", "audit_events", ["time_us"])
    op.create_table(
        "audit_nodes",
        sa.Column("level", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO audit_head (id, size) VALUES (1, 0)")
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    for table in ("audit_checkpoints", "audit_head", "audit_nodes", "audit_events"):
        op.drop_table(table)

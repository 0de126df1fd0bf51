"""Datasets record what their data holds, format aside: a content fingerprint and a MinHash
sketch of the raw upload and of the stored masked table, so that the same data in other
bytes finds its budget. Datasets made before this revision have none and match by raw
digest only.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_content",
        sa.Column("dataset_id", sa.Text(), primary_key=True),
        sa.Column("kind", sa.Text(), primary_key=True),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("sketch", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_dataset_content_fingerprint", "dataset_content", ["fingerprint"])
    op.create_table(
        "dataset_content_hashes",
        sa.Column("dataset_id", sa.Text(), primary_key=True),
        sa.Column("kind", sa.Text(), primary_key=True),
        sa.Column("hash", sa.BigInteger(), primary_key=True, autoincrement=False),
    )
    op.create_index("ix_dataset_content_hashes_hash", "dataset_content_hashes", ["hash"])


def downgrade() -> None:
    op.drop_table("dataset_content_hashes")
    op.drop_table("dataset_content")

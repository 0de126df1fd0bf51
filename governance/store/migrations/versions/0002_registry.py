"""The model registry: models, versions (sealed weights, facts, stage), approvals, uploads in flight.

Revision ID: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("latest_version", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("model_name", sa.Text(), sa.ForeignKey("models.name"), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("blob_digest", sa.Text(), nullable=False),
        sa.Column("kek_id", sa.Text(), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("erased", sa.Boolean(), nullable=False),
        sa.Column("tensors_json", sa.Text(), nullable=False),
        sa.Column("architecture", sa.Text(), nullable=False),
        sa.Column("signature_json", sa.Text(), nullable=False),
        sa.Column("metrics_json", sa.Text(), nullable=False),
        sa.Column("lineage_json", sa.Text(), nullable=False),
        sa.Column("has_guarantee", sa.Boolean(), nullable=False),
        sa.Column("dp_epsilon", sa.Float(), nullable=True),
        sa.Column("dp_delta", sa.Float(), nullable=True),
        sa.Column("guarantee_json", sa.Text(), nullable=False),
        sa.Column("trained_on_personal_data", sa.Boolean(), nullable=False),
        sa.Column("trainer", sa.Text(), nullable=False),
        sa.Column("preprocessing_json", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("thresholds_json", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=True),
        sa.Column("requested_us", sa.BigInteger(), nullable=True),
        sa.Column("released_by", sa.Text(), nullable=True),
        sa.Column("released_us", sa.BigInteger(), nullable=True),
        sa.Column("revoked_by", sa.Text(), nullable=True),
        sa.Column("revoked_us", sa.BigInteger(), nullable=True),
        sa.Column("revoked_reason", sa.Text(), nullable=True),
    )
    op.create_index("ux_model_versions_name_version", "model_versions", ["model_name", "version"], unique=True)
    op.create_index("ix_model_versions_stage", "model_versions", ["stage"])
    op.create_table(
        "model_approvals",
        sa.Column("version_id", sa.Text(), sa.ForeignKey("model_versions.id"), primary_key=True),
        sa.Column("principal", sa.Text(), primary_key=True),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
    )
    op.create_table(
        "model_uploads",
        sa.Column("version_id", sa.Text(), primary_key=True),
        sa.Column("model_name", sa.Text(), nullable=False),
        sa.Column("kek_id", sa.Text(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.BigInteger(), nullable=False),
        sa.Column("started_us", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_uploads")
    op.drop_table("model_approvals")
    op.drop_index("ix_model_versions_stage", table_name="model_versions")
    op.drop_index("ux_model_versions_name_version", table_name="model_versions")
    op.drop_table("model_versions")
    op.drop_table("models")

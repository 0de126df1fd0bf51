"""Facts Privet establishes, and who owns what.

- datasets: whether the data is personal, and every reason it is (not detectors alone);
  the owner's team.
- training_jobs: the SHA-256 of the weights the worker produced (recorded with the charge,
  before the model is registered) and the submitter's team.
- models: the owner's team.
- model_versions: the training job a version was established from (at most one version
  per job), whether its facts are established or claimed, an operator's declaration about
  personal data, and the signed attestation issued at release.

Existing datasets get their basis from what they recorded (detected columns,
quasi-identifiers, k); existing versions are claimed: no weights digest was recorded for
their jobs, so nothing can establish them after the fact.

Revision ID: 0010
Revises: 0009
"""
import json

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("datasets", sa.Column("personal", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("datasets", sa.Column("personal_basis_json", sa.Text(), nullable=False, server_default="[]"))
    op.add_column("datasets", sa.Column("team", sa.Text(), nullable=False, server_default=""))
    op.add_column("training_jobs", sa.Column("weights_digest", sa.Text(), nullable=False, server_default=""))
    op.add_column("training_jobs", sa.Column("team", sa.Text(), nullable=False, server_default=""))
    op.add_column("models", sa.Column("team", sa.Text(), nullable=False, server_default=""))
    op.add_column("model_versions", sa.Column("provenance", sa.Text(), nullable=False, server_default="claimed"))
    op.add_column("model_versions", sa.Column("job_id", sa.Text(), nullable=True))
    op.add_column("model_versions", sa.Column("personal_declared_by", sa.Text(), nullable=False, server_default=""))
    op.add_column("model_versions", sa.Column("attestation_json", sa.Text(), nullable=False, server_default=""))
    op.create_index("ux_model_versions_job", "model_versions", ["job_id"], unique=True)
    _backfill_personal_datasets()


def _backfill_personal_datasets() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, columns_json, quasi_identifiers_json, report_json FROM datasets")).fetchall()
    for dataset_id, columns_json, qi_json, report_json in rows:
        columns = json.loads(columns_json or "[]")
        reasons = [f"detected:{c['name']}" for c in columns if c.get("pii_types")]
        if json.loads(qi_json or "[]"):
            reasons.append("quasi-identifiers")
        k = (json.loads(report_json or "{}").get("k_anonymity") or {}).get("k", 0) if report_json else 0
        if isinstance(k, int) and k > 1:
            reasons.append("k-anonymity")
        bind.execute(sa.text("UPDATE datasets SET personal = :p, personal_basis_json = :b WHERE id = :i"),
                     {"p": bool(reasons), "b": json.dumps(reasons), "i": dataset_id})


def downgrade() -> None:
    op.drop_index("ux_model_versions_job", table_name="model_versions")
    for column in ("attestation_json", "personal_declared_by", "job_id", "provenance"):
        op.drop_column("model_versions", column)
    op.drop_column("models", "team")
    for column in ("team", "weights_digest"):
        op.drop_column("training_jobs", column)
    for column in ("team", "personal_basis_json", "personal"):
        op.drop_column("datasets", column)

"""SQLModel tables of the model registry: models, their versions, and release approvals.

Like every table, these are created and changed only by Alembic migrations
(`versions/0002_registry.py`); a test checks that the migrations and these classes agree.
JSON-valued columns hold canonical JSON text (sorted keys) so that rows compare byte for byte.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    Text,
)
from sqlmodel import Field, SQLModel

__all__ = ["Model", "ModelAlias", "ModelApproval", "ModelUpload", "ModelVersion"]


class Model(SQLModel, table=True):
    """A named model; its versions carry the weights and facts."""

    __tablename__ = "models"

    name: str = Field(sa_column=Column(Text, primary_key=True))
    owner: str = Field(sa_column=Column(Text, nullable=False))  # principal id of the first registrant
    created_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    latest_version: int = Field(sa_column=Column(BigInteger, nullable=False))
    team: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))  # the owner's team


class ModelVersion(SQLModel, table=True):
    """One immutable set of weights (sealed in a blob) plus its facts and release stage.

    `id` is bound into every encrypted chunk of the blob, so a blob only opens as the
    version it was sealed for. `wrapped_key`/`kek_id` are NULL once the version is erased.
    """

    __tablename__ = "model_versions"
    __table_args__ = (
        Index("ux_model_versions_name_version", "model_name", "version", unique=True),
        Index("ix_model_versions_stage", "stage"),
        Index("ux_model_versions_job", "job_id", unique=True),
    )

    id: str = Field(sa_column=Column(Text, primary_key=True))
    model_name: str = Field(sa_column=Column(Text, ForeignKey("models.name"), nullable=False))
    version: int = Field(sa_column=Column(BigInteger, nullable=False))
    stage: str = Field(sa_column=Column(Text, nullable=False))
    # the weights
    digest: str = Field(sa_column=Column(Text, nullable=False))  # SHA-256 hex of the plaintext
    size_bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    blob_digest: str = Field(sa_column=Column(Text, nullable=False))  # content address of the sealed blob
    kek_id: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    wrapped_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    erased: bool = Field(sa_column=Column(Boolean, nullable=False))
    tensors_json: str = Field(sa_column=Column(Text, nullable=False))  # [{name, dtype, shape}]
    # facts
    architecture: str = Field(sa_column=Column(Text, nullable=False))
    signature_json: str = Field(sa_column=Column(Text, nullable=False))  # {inputs: [...], outputs: [...]}
    metrics_json: str = Field(sa_column=Column(Text, nullable=False))
    lineage_json: str = Field(sa_column=Column(Text, nullable=False))
    has_guarantee: bool = Field(sa_column=Column(Boolean, nullable=False))
    dp_epsilon: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    dp_delta: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    guarantee_json: str = Field(sa_column=Column(Text, nullable=False))  # the full DP guarantee, {} if none
    trained_on_personal_data: bool = Field(sa_column=Column(Boolean, nullable=False))
    trainer: str = Field(sa_column=Column(Text, nullable=False))  # principal id that trained it
    preprocessing_json: str = Field(sa_column=Column(Text, nullable=False))
    description: str = Field(sa_column=Column(Text, nullable=False))
    created_by: str = Field(sa_column=Column(Text, nullable=False))
    created_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    # "established": registered by the training service for a job Privet ran, and checked
    # against that job (`job_id`, at most one version per job); "claimed": stated by an uploader.
    provenance: str = Field(default="claimed", sa_column=Column(Text, nullable=False, server_default="claimed"))
    job_id: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # An operator's audited declaration that a claimed version is not trained on personal data.
    personal_declared_by: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    # The DSSE envelope (JSON) of the attestation issued at release ("" before).
    attestation_json: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    # the release path
    thresholds_json: str = Field(sa_column=Column(Text, nullable=False))  # metric -> minimum, fixed at request
    requested_by: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    requested_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    released_by: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    released_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    revoked_by: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    revoked_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    revoked_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class ModelApproval(SQLModel, table=True):
    """One principal's approval of one version's release."""

    __tablename__ = "model_approvals"

    version_id: str = Field(sa_column=Column(Text, ForeignKey("model_versions.id"), primary_key=True))
    principal: str = Field(sa_column=Column(Text, primary_key=True))
    at_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    note: str = Field(sa_column=Column(Text, nullable=False))


class ModelAlias(SQLModel, table=True):
    """A name applications resolve to one RELEASED version of a model (e.g. "production").
    Moved only through the release gates; a version's aliases go when it is revoked."""

    __tablename__ = "model_aliases"

    model_name: str = Field(sa_column=Column(Text, ForeignKey("models.name"), primary_key=True))
    alias: str = Field(sa_column=Column(Text, primary_key=True))
    version: int = Field(sa_column=Column(BigInteger, nullable=False))
    set_by: str = Field(sa_column=Column(Text, nullable=False))
    set_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    reason: str = Field(sa_column=Column(Text, nullable=False))


class ModelUpload(SQLModel, table=True):
    """An upload whose sealed blob may be visible before its version row exists.

    Written before the blob is renamed into place and deleted in the transaction that
    inserts the version, so a row left behind by a process that died names an upload that
    never finished; its (wrapped) data key recognises the orphaned blob, which the registry
    removes when it next starts on the same host.
    """

    __tablename__ = "model_uploads"

    version_id: str = Field(sa_column=Column(Text, primary_key=True))
    model_name: str = Field(sa_column=Column(Text, nullable=False))
    kek_id: str = Field(sa_column=Column(Text, nullable=False))
    wrapped_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    host: str = Field(sa_column=Column(Text, nullable=False))
    pid: int = Field(sa_column=Column(BigInteger, nullable=False))
    started_us: int = Field(sa_column=Column(BigInteger, nullable=False))

"""Tables of the ingestion side: datasets, what their data holds, and pseudonymisation keys."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, Index, Integer, LargeBinary, Text, false
from sqlmodel import Field, SQLModel

__all__ = ["Dataset", "DatasetContent", "DatasetContentHash", "PseudonymKey"]


class Dataset(SQLModel, table=True):
    """A masked dataset. Its Parquet blob holds no direct identifier; its budget feeds the ledger."""

    __tablename__ = "datasets"
    __table_args__ = (Index("ux_datasets_live_name", "name", "deleted_at_us", unique=True),)

    id: str = Field(sa_column=Column(Text, primary_key=True))
    name: str = Field(sa_column=Column(Text, nullable=False))
    blob_digest: str = Field(sa_column=Column(Text, nullable=False))  # sha256 of the stored Parquet
    raw_digest: str = Field(sa_column=Column(Text, nullable=False))  # sha256 of the upload
    rows: int = Field(sa_column=Column(BigInteger, nullable=False))
    size_bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    columns_json: str = Field(sa_column=Column(Text, nullable=False))
    profile: str = Field(sa_column=Column(Text, nullable=False))
    profile_digest: str = Field(sa_column=Column(Text, nullable=False))
    domain: str = Field(sa_column=Column(Text, nullable=False))
    key_version: int = Field(sa_column=Column(Integer, nullable=False))
    report_json: str = Field(sa_column=Column(Text, nullable=False))
    quasi_identifiers_json: str = Field(sa_column=Column(Text, nullable=False))
    epsilon_total: float = Field(sa_column=Column(Float, nullable=False))
    delta: float = Field(sa_column=Column(Float, nullable=False))
    description: str = Field(sa_column=Column(Text, nullable=False))
    created_by: str = Field(sa_column=Column(Text, nullable=False))
    created_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    # 0 while live; erasure sets the time, so a name can be reused after deletion.
    deleted_at_us: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    # Whether the data is personal, and every reason (governance/datasets/personal.py).
    personal: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    personal_basis_json: str = Field(default="[]", sa_column=Column(Text, nullable=False, server_default="[]"))
    team: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))  # the owner's team at ingestion


class DatasetContent(SQLModel, table=True):
    """What a dataset's data holds, format aside (`governance/datasets/fingerprint.py`): of
    its raw upload (`kind` "raw") and of its stored masked table ("masked"). Kept after
    erasure, like the budget it finds: neither can be turned back into a row."""

    __tablename__ = "dataset_content"
    __table_args__ = (Index("ix_dataset_content_fingerprint", "fingerprint"),)

    dataset_id: str = Field(sa_column=Column(Text, primary_key=True))
    kind: str = Field(sa_column=Column(Text, primary_key=True))  # raw | masked
    fingerprint: str = Field(sa_column=Column(Text, nullable=False))  # content:<hex>
    rows: int = Field(sa_column=Column(BigInteger, nullable=False))
    sketch: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # ascending uint64 row hashes, little-endian


class DatasetContentHash(SQLModel, table=True):
    """Each hash of a `DatasetContent` sketch, as a signed 64-bit integer: an index from a
    row hash to the datasets that may share rows with an upload."""

    __tablename__ = "dataset_content_hashes"
    __table_args__ = (Index("ix_dataset_content_hashes_hash", "hash"),)

    dataset_id: str = Field(sa_column=Column(Text, primary_key=True))
    kind: str = Field(sa_column=Column(Text, primary_key=True))
    hash: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))


class PseudonymKey(SQLModel, table=True):
    """A keyed-hash / FF1 key, wrapped by a key-encryption key; `scope` is `dataset:<id>` or
    `domain:<name>` (datasets of one domain share it, so joins on masked keys still work)."""

    __tablename__ = "pseudonym_keys"

    scope: str = Field(sa_column=Column(Text, primary_key=True))
    version: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    kek_id: str = Field(sa_column=Column(Text, nullable=False))
    wrapped_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))  # None = destroyed
    destroyed: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))

"""SQLModel tables. The schema itself is created and changed only by Alembic migrations
(governance/store/migrations); a test checks the migrations and these classes agree."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, LargeBinary, Text
from sqlmodel import Field, SQLModel

__all__ = ["AuditEvent", "AuditNode", "AuditHead", "AuditCheckpoint"]


class AuditEvent(SQLModel, table=True):
    """One append-only audit event. `leaf` is the exact canonical bytes hashed into the log."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_principal_seq", "principal", "seq"),
        Index("ix_audit_events_resource_seq", "resource", "seq"),
        Index("ix_audit_events_time", "time_us"),
    )

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    time_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    principal: str = Field(sa_column=Column(Text, nullable=False))
    action: str = Field(sa_column=Column(Text, nullable=False))
    resource: str = Field(sa_column=Column(Text, nullable=False))
    decision: str = Field(sa_column=Column(Text, nullable=False))
    policy_ids: str = Field(sa_column=Column(Text, nullable=False))  # JSON list
    details: str = Field(sa_column=Column(Text, nullable=False))  # JSON object
    leaf: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class AuditNode(SQLModel, table=True):
    """The hash of the perfect subtree of 2**level leaves starting at leaf idx * 2**level."""

    __tablename__ = "audit_nodes"

    level: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class AuditHead(SQLModel, table=True):
    """A single row holding the log's size; locked by every appending transaction so that the
    database, not any one process, assigns the dense sequence numbers."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))


class AuditCheckpoint(SQLModel, table=True):
    """A signed tree head (C2SP tlog-checkpoint note)."""

    __tablename__ = "audit_checkpoints"

    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    note: str = Field(sa_column=Column(Text, nullable=False))
    time_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    key_id: str | None = Field(default=None, sa_column=Column(Text, nullable=True))

"""Tables of the privacy budget ledger. ε is stored in micro-ε integers: sums never drift.

A budget belongs to the data, not to a dataset record: its key (`budget_id`) is the digest
of the first raw upload of that data (`sha256:<hex>`), and every dataset made from the same
bytes or the same content (another name, another masking profile, another file format, a
re-creation after deletion: `dataset_tables.DatasetContent`) is linked to the same budget.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, Text
from sqlmodel import Field, SQLModel

__all__ = ["DatasetBudget", "LedgerEntry", "PrivacyBudgetRow"]


class PrivacyBudgetRow(SQLModel, table=True):
    """One budget of one body of data. Invariant (checked by the UPDATE that reserves):
    reserved + spent ≤ total, where spent is the composed ε of every charge at `delta`."""

    __tablename__ = "privacy_budgets"

    budget_id: str = Field(sa_column=Column(Text, primary_key=True))  # sha256:<raw digest>, or dataset:<id>
    dataset_id: str = Field(sa_column=Column(Text, nullable=False))  # the dataset whose ingestion opened it
    epsilon_total_micro: int = Field(sa_column=Column(BigInteger, nullable=False))
    delta: float = Field(sa_column=Column(Float, nullable=False))
    reserved_micro: int = Field(sa_column=Column(BigInteger, nullable=False))
    spent_micro: int = Field(sa_column=Column(BigInteger, nullable=False))


class DatasetBudget(SQLModel, table=True):
    """Which budget a dataset draws on. Never deleted: an erased dataset's budget stays spent."""

    __tablename__ = "privacy_budget_datasets"
    __table_args__ = (Index("ix_privacy_budget_datasets_budget", "budget_id"),)

    dataset_id: str = Field(sa_column=Column(Text, primary_key=True))
    budget_id: str = Field(sa_column=Column(Text, nullable=False))


class LedgerEntry(SQLModel, table=True):
    """One open, link, reservation, charge or release, with what a charge was computed from,
    so anyone can recompute the spend: a DP-SGD run (`mechanism` "subsampled-gaussian":
    noise multiplier, sample rate, steps, δ) or a DP release (`mechanism` its name, e.g.
    "laplace"; `purpose` what it published; its own ε and δ)."""

    __tablename__ = "privacy_ledger"
    __table_args__ = (Index("ix_privacy_ledger_dataset", "dataset_id", "id"), Index("ix_privacy_ledger_budget", "budget_id", "id"))

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    budget_id: str = Field(sa_column=Column(Text, nullable=False, server_default=""))
    dataset_id: str = Field(sa_column=Column(Text, nullable=False))
    job_id: str = Field(sa_column=Column(Text, nullable=False))
    kind: str = Field(sa_column=Column(Text, nullable=False))  # open | link | reserve | charge | release
    epsilon_micro: int = Field(sa_column=Column(BigInteger, nullable=False))
    delta: float = Field(sa_column=Column(Float, nullable=False))
    mechanism: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    purpose: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    noise_multiplier: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    sample_rate: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    steps: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    accountant: str = Field(sa_column=Column(Text, nullable=False))
    privacy_unit: str = Field(sa_column=Column(Text, nullable=False))
    principal: str = Field(sa_column=Column(Text, nullable=False))
    time_us: int = Field(sa_column=Column(BigInteger, nullable=False))

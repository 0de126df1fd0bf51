"""Tables of the privacy budget ledger. ε is stored in micro-ε integers: sums never drift."""

from __future__ import annotations

from typing import Optional

from sqlalchemy import BigInteger, Column, Float, Index, Integer, Text
from sqlmodel import Field, SQLModel

__all__ = ["PrivacyBudgetRow", "LedgerEntry"]


class PrivacyBudgetRow(SQLModel, table=True):
    """A dataset's budget. Invariant (checked by the UPDATE that reserves): reserved + spent ≤ total."""

    __tablename__ = "privacy_budgets"

    dataset_id: str = Field(sa_column=Column(Text, primary_key=True))
    epsilon_total_micro: int = Field(sa_column=Column(BigInteger, nullable=False))
    delta: float = Field(sa_column=Column(Float, nullable=False))
    reserved_micro: int = Field(sa_column=Column(BigInteger, nullable=False))
    spent_micro: int = Field(sa_column=Column(BigInteger, nullable=False))


class LedgerEntry(SQLModel, table=True):
    """One reservation, charge or release, with the mechanism a charge was computed from, so
    anyone can recompute the spend."""

    __tablename__ = "privacy_ledger"
    __table_args__ = (Index("ix_privacy_ledger_dataset", "dataset_id", "id"),)

    id: Optional[int] = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    dataset_id: str = Field(sa_column=Column(Text, nullable=False))
    job_id: str = Field(sa_column=Column(Text, nullable=False))
    kind: str = Field(sa_column=Column(Text, nullable=False))  # reserve | charge | release
    epsilon_micro: int = Field(sa_column=Column(BigInteger, nullable=False))
    delta: float = Field(sa_column=Column(Float, nullable=False))
    noise_multiplier: Optional[float] = Field(default=None, sa_column=Column(Float, nullable=True))
    sample_rate: Optional[float] = Field(default=None, sa_column=Column(Float, nullable=True))
    steps: Optional[int] = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    accountant: str = Field(sa_column=Column(Text, nullable=False))
    privacy_unit: str = Field(sa_column=Column(Text, nullable=False))
    principal: str = Field(sa_column=Column(Text, nullable=False))
    time_us: int = Field(sa_column=Column(BigInteger, nullable=False))

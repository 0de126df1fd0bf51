"""The training jobs table: the queue workers claim from, and each job's record."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, Index, Text
from sqlmodel import Field, SQLModel

__all__ = ["TrainingJob", "JOB_STATES", "TERMINAL_STATES"]

JOB_STATES = ("QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")
TERMINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")


class TrainingJob(SQLModel, table=True):
    __tablename__ = "training_jobs"
    __table_args__ = (Index("ix_training_jobs_state_submitted", "state", "submitted_at_us"), Index("ix_training_jobs_dataset", "dataset_id"))

    id: str = Field(sa_column=Column(Text, primary_key=True))
    dataset_id: str = Field(sa_column=Column(Text, nullable=False))
    dataset_name: str = Field(sa_column=Column(Text, nullable=False))
    dataset_digest: str = Field(sa_column=Column(Text, nullable=False))
    spec_json: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(sa_column=Column(Text, nullable=False))
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    submitted_by: str = Field(sa_column=Column(Text, nullable=False))
    submitted_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    started_at_us: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    finished_at_us: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    heartbeat_us: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    claimed_by: str = Field(default="", sa_column=Column(Text, nullable=False))
    cancel_requested: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    epsilon_reserved: float = Field(sa_column=Column(Float, nullable=False))
    # An upper bound on the noisy steps the worker may have taken, persisted before it may
    # take them: what a restart charges when the worker's own count is lost with it.
    steps_allowed: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    noise_multiplier: float = Field(default=0.0, sa_column=Column(Float, nullable=False))
    sample_rate: float = Field(default=0.0, sa_column=Column(Float, nullable=False))
    progress_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    guarantee_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    metrics_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    epsilon_charged: float = Field(default=0.0, sa_column=Column(Float, nullable=False))
    # When the ledger charged the job (0: not yet). Set before its model is published, so a
    # job can be charged and still RUNNING; then nothing may charge it again.
    charged_at_us: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    model_name: str = Field(default="", sa_column=Column(Text, nullable=False))
    model_version: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    device: str = Field(default="", sa_column=Column(Text, nullable=False))
    # The SHA-256 of the weights the worker produced, recorded with the charge (before the
    # model is registered): what the registry checks a version of this job against.
    weights_digest: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    team: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))  # the submitter's team
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))

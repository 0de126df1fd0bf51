"""A training job as callers see it: the stored row with its JSON columns (the submitted
spec, progress, guarantee, metrics) read once, here, so that nothing outside the training
core parses the table's storage format."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from privet.governance.store.training_tables import TERMINAL_STATES, TrainingJob

__all__ = ["JobProgress", "JobRecord"]


@dataclass(frozen=True)
class JobProgress:
    epoch: int
    step: int
    total_steps: int
    epsilon_spent: float
    eta_seconds: float


@dataclass(frozen=True)
class JobRecord:
    id: str
    state: str
    reason: str
    spec: dict[str, Any]  # the submitted JobSpec, as stored
    submitted_by: str
    submitted_at_us: int
    started_at_us: int
    finished_at_us: int
    progress: JobProgress
    guarantee: dict[str, Any]  # empty until the job is charged
    metrics: dict[str, float]
    model_name: str
    model_version: int
    epsilon_reserved: float
    device: str

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    @classmethod
    def of(cls, job: TrainingJob) -> JobRecord:
        p = json.loads(job.progress_json or "{}")
        progress = JobProgress(epoch=int(p.get("epoch", 0)), step=int(p.get("step", 0)), total_steps=int(p.get("total_steps", 0)),
                               epsilon_spent=float(p.get("epsilon", job.epsilon_charged)), eta_seconds=float(p.get("eta_s", 0.0)))
        metrics = {k: float(v) for k, v in json.loads(job.metrics_json or "{}").items() if isinstance(v, (int, float))}
        return cls(id=job.id, state=job.state, reason=job.reason, spec=json.loads(job.spec_json), submitted_by=job.submitted_by,
                   submitted_at_us=job.submitted_at_us, started_at_us=job.started_at_us, finished_at_us=job.finished_at_us, progress=progress,
                   guarantee=json.loads(job.guarantee_json or "{}"), metrics=metrics, model_name=job.model_name, model_version=job.model_version,
                   epsilon_reserved=job.epsilon_reserved, device=job.device)

"""Facts Privet established about a version, as opposed to what its uploader claimed.

A version is *established* when the training service registered it for a job Privet ran,
and everything it says checks out against that job's record and the ledger: the job was
charged (so it ran and paid), the weights are exactly those its worker reported (their
SHA-256 was recorded with the charge), the stated DP guarantee is the one the job was
charged for, the model name is the job's, and no other version came from the job. Its
lineage, guarantee, evaluation and personal-data fact are then taken from Privet's own
records, never from the message. A version stays established only while its job's record
agrees (the job SUCCEEDED with this very version): `still_established`.

Anything else is *claimed*: stored and shown as the uploader said, never enough for the
release rules on personal data.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from privet.governance.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from privet.governance.store.dataset_tables import Dataset
from privet.governance.store.registry_tables import ModelVersion
from privet.governance.store.training_tables import TrainingJob

__all__ = ["CLAIMED", "ESTABLISHED", "Established", "establish", "job_of", "still_established"]

ESTABLISHED, CLAIMED = "established", "claimed"


@dataclass(frozen=True)
class Established:
    """What Privet's records say about a version of `job`."""

    job: TrainingJob
    dataset: Dataset
    lineage: dict[str, str]
    guarantee: dict[str, Any] | None
    metrics: dict[str, float]

    @property
    def trainer(self) -> str:
        return self.job.submitted_by


def job_of(session: Session, lineage: dict[str, str]) -> TrainingJob | None:
    job_id = lineage.get("training_job_id", "")
    return session.get(TrainingJob, job_id) if job_id else None


def establish(session: Session, *, model_name: str, weights_digest: str, lineage: dict[str, str], guarantee: dict[str, Any] | None, code_version: str) -> Established:
    """Check a training-service registration against its job (locked) and return the facts
    Privet holds. FailedPrecondition / AlreadyExists / InvalidArgument name what disagrees:
    a registration that does not check out is refused, never downgraded to claimed."""
    job_id = lineage.get("training_job_id", "")
    if not job_id:
        raise InvalidArgument("metadata.lineage.training_job_id", "the training service registers the versions of its jobs only")
    job = session.get(TrainingJob, job_id, with_for_update=True)
    if job is None:
        raise FailedPrecondition(f"no training job {job_id!r}")
    if job.state != "RUNNING" or not job.charged_at_us:
        raise FailedPrecondition(f"job {job_id} is {job.state}{'' if job.charged_at_us else ', not charged'}: only a charged job that is finishing registers its model")
    if not job.weights_digest or job.weights_digest != weights_digest:
        raise FailedPrecondition(f"the weights (sha256 {weights_digest[:12]}…) are not those job {job_id} produced")
    spec = json.loads(job.spec_json)
    if spec.get("model_name") != model_name:
        raise FailedPrecondition(f"job {job_id} trains model {spec.get('model_name')!r}, not {model_name!r}")
    charged = json.loads(job.guarantee_json or "{}") or None
    if not _same_guarantee(guarantee, charged):
        raise FailedPrecondition(f"the stated DP guarantee is not the one job {job_id} was charged for")
    if lineage.get("dataset_id") and lineage["dataset_id"] != job.dataset_id:
        raise FailedPrecondition(f"job {job_id} trained on dataset {job.dataset_id}, not {lineage['dataset_id']}")
    if session.scalar(select(col(ModelVersion.id)).where(col(ModelVersion.job_id) == job_id)) is not None:
        raise AlreadyExists(f"job {job_id} already has a registered version")
    dataset = session.get(Dataset, job.dataset_id)
    if dataset is None:
        raise FailedPrecondition(f"the dataset {job.dataset_id} of job {job_id} is not recorded")
    facts = {
        "dataset_id": dataset.id, "dataset_name": dataset.name, "dataset_digest": job.dataset_digest, "raw_digest": dataset.raw_digest,
        "masking_profile": dataset.profile, "masking_profile_digest": dataset.profile_digest, "training_job_id": job.id,
        "code_version": code_version, "trained_by": job.submitted_by,
        **_base_of(spec),
    }
    metrics = {k: float(v) for k, v in json.loads(job.metrics_json or "{}").items() if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    return Established(job, dataset, facts, charged, metrics)


def _base_of(spec: dict[str, Any]) -> dict[str, str]:
    """The base model a job fine-tuned, as the training service resolved it at submit (a
    released base of the registry, by digest), for the version's lineage; {} for none."""
    base = (spec.get("hparams") or {}).get("base")
    if not isinstance(base, dict):
        return {}
    return {"base_model": str(base.get("model", "")), "base_version": str(base.get("version", "")), "base_digest": str(base.get("digest", ""))}


def _same_guarantee(stated: dict[str, Any] | None, charged: dict[str, Any] | None) -> bool:
    """The stated guarantee names the same mechanism and (ε, δ) as the charged one."""
    if stated is None or charged is None:
        return stated is None and charged is None
    keys = ("epsilon", "delta", "noise_multiplier", "sample_rate", "steps")
    return all(stated.get(k) == charged.get(k) for k in keys)


def still_established(session: Session, row: ModelVersion) -> bool:
    """Whether the job a version was established from still vouches for it: it SUCCEEDED,
    registered this very version, with these weights."""
    if row.provenance != ESTABLISHED or not row.job_id:
        return False
    job = session.get(TrainingJob, row.job_id)
    return bool(job is not None and job.state == "SUCCEEDED" and job.model_name == row.model_name
                and job.model_version == row.version and job.weights_digest == row.digest)

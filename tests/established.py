"""Versions whose facts Privet established, for registry tests that are about the gates and
not about training: the records the ingestion and training services keep (a dataset, a
charged job with its weights' digest and guarantee) are written as those services write
them, then the version is registered as the training service, through the registry's
real check (`governance.registry.established`), and the job is ended with it.

The whole flow with real training is covered by tests/integration/test_training.py.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import replace

from privet.governance.registry import ModelRegistry, VersionRecord, VersionSpec
from privet.governance.runtime import Runtime
from privet.governance.store.dataset_tables import Dataset
from privet.governance.store.training_tables import TrainingJob
from privet.governance.training.jobs import finish_job

__all__ = ["end_job", "establish_version", "record_charged_job", "record_dataset", "training_service"]


def _now_us() -> int:
    return int(time.time() * 1e6)


def training_service(rt: Runtime):
    return rt.policies.engine.directory.principals["service/training"]


def record_dataset(rt: Runtime, *, owner: str = "user/alice", personal: bool = True, name: str = "") -> Dataset:
    team = rt.policies.engine.directory.principals[owner].team if owner in rt.policies.engine.directory.principals else ""
    row = Dataset(
        id=str(uuid.uuid4()), name=name or f"ds-{uuid.uuid4().hex[:8]}", blob_digest=hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
        raw_digest=hashlib.sha256(uuid.uuid4().bytes).hexdigest(), rows=1000, size_bytes=1, columns_json="[]", profile="default",
        profile_digest="0" * 64, domain="", key_version=1, report_json="{}", quasi_identifiers_json="[]", epsilon_total=10.0, delta=1e-5,
        description="", created_by=owner, created_at_us=_now_us(), personal=personal, personal_basis_json=json.dumps(["declared-by-owner"] if personal else []),
        team=team,
    )
    rt.write(lambda s: s.add(row))
    return row


def record_charged_job(rt: Runtime, dataset: Dataset, *, submitted_by: str, model_name: str, weights: bytes, guarantee: dict | None, metrics: dict | None = None) -> TrainingJob:
    """A job as the training service leaves it just before registering its model: RUNNING,
    charged, with the weights' digest, guarantee and metrics recorded."""
    job = TrainingJob(
        id=str(uuid.uuid4()), dataset_id=dataset.id, dataset_name=dataset.name, dataset_digest=dataset.blob_digest,
        spec_json=json.dumps({"model_name": model_name}), state="RUNNING", submitted_by=submitted_by, submitted_at_us=_now_us(),
        epsilon_reserved=(guarantee or {}).get("epsilon", 1.0), charged_at_us=_now_us(), weights_digest=hashlib.sha256(weights).hexdigest(),
        guarantee_json=json.dumps(guarantee or {}), metrics_json=json.dumps(metrics or {}), team=dataset.team,
    )
    rt.write(lambda s: s.add(job))
    return job


def end_job(rt: Runtime, job_id: str, model_name: str, version: int, state: str = "SUCCEEDED") -> None:
    """End the (already charged) job as the training service does once its model is registered."""
    finish_job(rt, job_id, state, "", None, model=(model_name, version))


def establish_version(registry: ModelRegistry, rt: Runtime, spec: VersionSpec, weights: bytes, *, submitted_by: str = "user/alice",
                      personal: bool = True, dataset: Dataset | None = None) -> VersionRecord:
    """Register `spec` as the training service would for a job `submitted_by` ran on a
    (personal, by default) dataset, and end that job SUCCEEDED with the version."""
    dataset = dataset or record_dataset(rt, owner=submitted_by if submitted_by in rt.policies.engine.directory.principals else "user/alice", personal=personal)
    job = record_charged_job(rt, dataset, submitted_by=submitted_by, model_name=spec.model_name, weights=weights, guarantee=spec.guarantee, metrics=spec.metrics)
    spec = replace(spec, lineage={**spec.lineage, "training_job_id": job.id, "dataset_id": dataset.id})
    record = registry.create_version(training_service(rt), spec, [weights])
    end_job(rt, job.id, spec.model_name, record.version)
    return registry.get_version(spec.model_name, record.version)

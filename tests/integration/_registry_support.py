"""What the registry's integration tests share: a complete DP guarantee, weights to upload, and
reads of the rows and audit events a registration leaves."""

from __future__ import annotations

import numpy as np
from safetensors.numpy import save
from sqlalchemy import select

from privet.governance.runtime import Runtime
from privet.governance.store.registry_tables import ModelUpload, ModelVersion
from privet.governance.store.tables import AuditEvent

GUARANTEE = {"epsilon": 3.0, "delta": 1e-6, "noise_multiplier": 1.1, "sample_rate": 0.01, "steps": 500, "accountant": "prv", "max_grad_norm": 1.0}


def weights(n: int = 100, seed: int = 0) -> bytes:
    return save({"w": np.random.default_rng(seed).standard_normal(n).astype(np.float32)})


def principal(rt: Runtime, who: str):
    return rt.policies.engine.directory.principals[who]


def version_row(rt: Runtime, name: str, version: int = 1) -> ModelVersion:
    with rt.read() as session:
        return session.scalars(select(ModelVersion).where(ModelVersion.model_name == name, ModelVersion.version == version)).one()


def audit_events(rt: Runtime, action: str) -> list[AuditEvent]:
    with rt.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)))


def uploads(rt: Runtime) -> list[ModelUpload]:
    with rt.read() as session:
        return list(session.scalars(select(ModelUpload)))

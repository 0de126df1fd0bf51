"""The registry's records as callers see them, and the lookups that produce them.

`VersionSpec` is what a caller states about a new version; `VersionRecord`, `ModelRecord`
and `ApprovalRecord` are what every read and write returns (never a wrapped key). The
rows they are made from live in `governance/store/registry_tables.py`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from privet.governance.errors import InvalidArgument, NotFound
from privet.governance.identity.spiffe import check_name
from privet.governance.registry.established import CLAIMED
from privet.governance.registry.gates import Stage
from privet.governance.store.registry_tables import Model, ModelAlias, ModelApproval, ModelVersion

__all__ = [
    "ApprovalRecord",
    "ModelRecord",
    "VersionRecord",
    "VersionSpec",
    "approvals_of",
    "column_json",
    "find_model",
    "find_version",
    "model_record",
    "now_us",
    "version_record",
    "version_resource",
]


@dataclass(frozen=True)
class VersionSpec:
    """What a caller states about a new version (the weights come separately)."""

    model_name: str
    architecture: str = ""
    inputs: list[dict[str, Any]] = field(default_factory=list)  # [{name, datatype, shape}]
    outputs: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    lineage: dict[str, str] = field(default_factory=dict)
    guarantee: dict[str, Any] | None = None  # epsilon, delta, noise_multiplier, ...
    trained_on_personal_data: bool = False
    preprocessing_json: str = ""
    description: str = ""
    expected_size: int = 0  # 0 = not stated
    # A base model (architecture `transformers-base`): what its uploader states about it.
    base_license: str = ""  # an SPDX license identifier, e.g. "Apache-2.0"
    base_source: str = ""  # where it came from (a URL, a vendor, a release name)


@dataclass(frozen=True)
class ApprovalRecord:
    principal: str
    at_us: int
    note: str


@dataclass(frozen=True)
class VersionRecord:
    """A version as callers see it (never the wrapped key)."""

    id: str
    model_name: str
    version: int
    stage: str
    digest: str
    size_bytes: int
    architecture: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    metrics: dict[str, float]
    lineage: dict[str, str]
    guarantee: dict[str, Any] | None
    trained_on_personal_data: bool
    tensors: list[dict[str, Any]]
    preprocessing_json: str
    description: str
    created_by: str
    created_us: int
    requested_by: str
    thresholds: dict[str, float]
    approvals: list[ApprovalRecord]
    released_by: str
    revoked_reason: str
    erased: bool
    key_id: str
    blob_digest: str
    provenance: str = CLAIMED
    job_id: str = ""
    personal_declared_by: str = ""
    team: str = ""
    attestation: str = ""  # the DSSE envelope (JSON) issued at release, "" before


@dataclass(frozen=True)
class ModelRecord:
    name: str
    owner: str
    created_us: int
    latest_version: int
    released_version: int  # 0 = none
    team: str = ""


def now_us() -> int:
    return int(time.time() * 1_000_000)


def column_json(value: Any) -> str:
    """How the registry writes its JSON columns: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def version_resource(name: str, version: int) -> str:
    """The audit resource of a version (what its events and attestation name)."""
    return f"model/{name}/{version}"


def find_model(session: Session, name: str) -> Model:
    """The model row; NotFound when there is none."""
    model = session.get(Model, name)
    if model is None:
        raise NotFound(f"model {name!r} not found")
    return model


BUILT_IN_ALIASES = ("released", "latest")


def find_version(session: Session, name: str, version: int, alias: str, *, lock: bool = False) -> ModelVersion:
    """`version` > 0, or version 0 with alias "released" (the newest released), "latest", or
    an alias set by SetAlias (with or without a leading "@"). InvalidArgument for any other
    pair, NotFound when no such version (or alias) exists. `lock`: FOR UPDATE."""
    alias = alias.removeprefix("@")
    query = select(ModelVersion).where(col(ModelVersion.model_name) == name)
    if version > 0:
        query = query.where(col(ModelVersion.version) == version)
    elif version == 0 and alias == "released":
        query = query.where(col(ModelVersion.stage) == Stage.RELEASED).order_by(col(ModelVersion.version).desc()).limit(1)
    elif version == 0 and alias == "latest":
        query = query.order_by(col(ModelVersion.version).desc()).limit(1)
    elif version == 0 and alias:
        target = session.get(ModelAlias, (name, check_name(alias, "alias")))
        if target is None:
            raise NotFound(f"model {name!r} has no alias {alias!r}")
        query = query.where(col(ModelVersion.version) == target.version)
    else:
        raise InvalidArgument("version", "give a version number, or version 0 with an alias (\"released\", \"latest\" or one set by SetAlias)")
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).first()
    if row is None:
        what = f"{name}:{version}" if version > 0 else f"{name} ({alias})"
        raise NotFound(f"model version {what} not found")
    return row


def approvals_of(session: Session, version_id: str) -> list[ApprovalRecord]:
    query = select(ModelApproval).where(col(ModelApproval.version_id) == version_id).order_by(col(ModelApproval.at_us))
    return [ApprovalRecord(a.principal, a.at_us, a.note) for a in session.scalars(query)]


def model_record(session: Session, model: Model) -> ModelRecord:
    released = session.scalar(select(func.max(col(ModelVersion.version)))
                              .where(col(ModelVersion.model_name) == model.name, col(ModelVersion.stage) == Stage.RELEASED))
    return ModelRecord(model.name, model.owner, model.created_us, model.latest_version, int(released or 0), model.team)


def version_record(row: ModelVersion, approvals: list[ApprovalRecord], model: Model | None = None, now: tuple[str, bool] | None = None) -> VersionRecord:
    """The record of `row`. `now`: its provenance and personal-data fact as the gates read
    them now (`facts.as_of_now`); without it, as they were registered."""
    signature = json.loads(row.signature_json)
    guarantee = json.loads(row.guarantee_json) if row.has_guarantee else None
    return VersionRecord(
        id=row.id, model_name=row.model_name, version=row.version, stage=row.stage, digest=row.digest, size_bytes=row.size_bytes,
        architecture=row.architecture, inputs=signature.get("inputs", []), outputs=signature.get("outputs", []),
        metrics=json.loads(row.metrics_json), lineage=json.loads(row.lineage_json), guarantee=guarantee,
        trained_on_personal_data=now[1] if now else row.trained_on_personal_data, tensors=json.loads(row.tensors_json),
        preprocessing_json=row.preprocessing_json, description=row.description, created_by=row.created_by, created_us=row.created_us,
        requested_by=row.requested_by or "", thresholds=json.loads(row.thresholds_json), approvals=approvals,
        released_by=row.released_by or "", revoked_reason=row.revoked_reason or "", erased=row.erased, key_id=row.kek_id or "",
        blob_digest=row.blob_digest, provenance=now[0] if now else row.provenance, job_id=row.job_id or "", personal_declared_by=row.personal_declared_by,
        team=model.team if model is not None else "", attestation=row.attestation_json,
    )

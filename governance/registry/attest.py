"""The attestation the registry issues when it releases a version: an in-toto statement in
a DSSE envelope, signed with the registry's attestation key (keys/attestation.key, its
public half keys/attestation.pub beside the audit key). Format: docs/attestation.md.

It is built inside the release's own transaction, from the registry's records only: the
weights' digest, the lineage, guarantee and evaluation the version holds (established or
claimed, and labelled so), its approvals, and the sequence numbers of the audit events
that recorded each of them, the release itself included, so that anyone holding the
log's checkpoints can check every fact against the public log.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from privet.governance.attestation.dsse import sign_envelope
from privet.governance.attestation.keys import AttestationSigner
from privet.governance.attestation.statement import release_statement, statement_bytes
from privet.governance.store.registry_tables import ModelApproval, ModelVersion
from privet.governance.store.tables import AuditEvent

__all__ = ["cited_seqs", "issue_attestation"]

# The events whose record a released version's facts rest on, by the resource they name.
_VERSION_EVENTS = ("registry.CreateModelVersion", "registry.RequestRelease", "registry.ApproveRelease", "registry.DeclarePersonalData")
_JOB_EVENTS = ("training.SubmitJob", "training.StartJob", "training.EndJob")


def _events(session: Session, resource: str, actions: tuple[str, ...], *, decision: tuple[str, ...] = ("allow", "info")) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.resource == resource, AuditEvent.action.in_(actions), AuditEvent.decision.in_(decision)).order_by(AuditEvent.seq)  # type: ignore[attr-defined]
    return list(session.scalars(query))


def _cited(session: Session, row: ModelVersion, lineage: dict[str, str]) -> list[AuditEvent]:
    """The recorded events behind the version's facts (the release itself not yet included)."""
    cited = [e for e in _events(session, f"model/{row.model_name}/{row.version}", _VERSION_EVENTS) if json.loads(e.details).get("version_id", row.id) == row.id]
    dataset_id, job_id = lineage.get("dataset_id", ""), lineage.get("training_job_id", "")
    if row.job_id:
        cited += _events(session, f"job/{job_id}", _JOB_EVENTS)
        # The ledger's entries for this job on its dataset's budget (reserve, charge, release).
        cited += [e for e in session.scalars(select(AuditEvent).where(AuditEvent.resource == f"dataset/{dataset_id}", AuditEvent.action.like("privacy.%")).order_by(AuditEvent.seq))  # type: ignore[attr-defined]
                  if json.loads(e.details).get("job_id") == job_id]
        name = lineage.get("dataset_name", "")
        cited += [e for e in _events(session, f"dataset/{name}", ("ingestion.CreateDataset",)) if json.loads(e.details).get("dataset_id") == dataset_id]
    return sorted(cited, key=lambda e: e.seq)


def issue_attestation(session: Session, row: ModelVersion, *, release_seq: int, signer: AttestationSigner, team: str, log_origin: str) -> str:
    """The DSSE envelope (JSON text) for `row`, which is being released by the event at
    `release_seq` in this same transaction."""
    lineage = json.loads(row.lineage_json)
    approvals = list(session.scalars(select(ModelApproval).where(ModelApproval.version_id == row.id).order_by(ModelApproval.at_us)))
    resource = f"model/{row.model_name}/{row.version}"
    events = [{"seq": e.seq, "action": e.action, "resource": e.resource} for e in _cited(session, row, lineage)]
    events.append({"seq": release_seq, "action": "registry.ReleaseModelVersion", "resource": resource})
    predicate: dict[str, Any] = {
        "model": {"name": row.model_name, "version": row.version, "version_id": row.id, "architecture": row.architecture, "team": team,
                  "weights": {"sha256": row.digest, "size": row.size_bytes}},
        "provenance": row.provenance,
        "lineage": lineage,
        "trainedOnPersonalData": row.trained_on_personal_data,
        "personalDataDeclaredBy": row.personal_declared_by,
        "guarantee": json.loads(row.guarantee_json) if row.has_guarantee else None,
        "evaluation": json.loads(row.metrics_json),
        "release": {"requested_by": row.requested_by or "", "thresholds": json.loads(row.thresholds_json),
                    "approvals": [{"principal": a.principal, "at_us": a.at_us} for a in approvals],
                    "released_by": row.released_by or "", "released_at_us": row.released_us or 0},
        "auditLog": {"origin": log_origin},
        "auditEvents": events,
        "issuer": {"name": "privet-registry", "keyid": signer.keyid},
    }
    statement = release_statement(subject_name=f"{resource}/weights.safetensors", weights_sha256=row.digest, predicate=predicate)
    return json.dumps(sign_envelope(statement_bytes(statement), signer), sort_keys=True)


def cited_seqs(envelope_json: str) -> list[int]:
    """The audit sequence numbers an issued attestation cites (read from its own payload)."""
    import base64

    payload = json.loads(base64.b64decode(json.loads(envelope_json)["payload"]))
    return [int(e["seq"]) for e in payload["predicate"]["auditEvents"]]

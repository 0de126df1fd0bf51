"""The attestation the registry issues when it releases a version: an in-toto statement in
a DSSE envelope, signed with the registry's attestation key (keys/attestation.key, its
public half keys/attestation.pub beside the audit key). Format: docs/attestation.md.

It is built inside the release's own transaction, from the registry's records only: the
weights' digest, the lineage, guarantee and evaluation the version holds (established or
claimed, and labelled so), its approvals, and the sequence numbers of the audit events
that recorded each of them, the release itself included, so that anyone holding the
log's checkpoints can check every fact against the public log.

Also here: attesting, at start, the versions released before attestations existed
(`attest_unattested_releases`), and the attestation document `privet models attest` writes
(`attestation_document_of`: the envelope with an inclusion proof of every event it cites).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from privet.governance.attestation.dsse import sign_envelope
from privet.governance.attestation.keys import AttestationSigner
from privet.governance.attestation.statement import release_statement, statement_bytes
from privet.governance.attestation.verify import attestation_document
from privet.governance.audit.log import Event
from privet.governance.audit.offline import make_bundle
from privet.governance.audit.storage import SqlNodeReader
from privet.governance.errors import DataLoss
from privet.governance.registry.gates import Stage
from privet.governance.registry.records import VersionRecord, version_resource
from privet.governance.runtime import Runtime
from privet.governance.store.registry_tables import Model, ModelApproval, ModelVersion
from privet.governance.store.tables import AuditEvent

__all__ = ["attest_unattested_releases", "attestation_document_of", "cited_seqs", "issue_attestation"]

log = logging.getLogger("privet.registry")

# The events whose record a released version's facts rest on, by the resource they name.
_VERSION_EVENTS = ("registry.CreateModelVersion", "registry.RequestRelease", "registry.ApproveRelease", "registry.DeclarePersonalData")
_JOB_EVENTS = ("training.SubmitJob", "training.StartJob", "training.EndJob")


def _events(session: Session, resource: str, actions: tuple[str, ...], *, decision: tuple[str, ...] = ("allow", "info")) -> list[AuditEvent]:
    query = (select(AuditEvent).where(col(AuditEvent.resource) == resource, col(AuditEvent.action).in_(actions), col(AuditEvent.decision).in_(decision))
             .order_by(col(AuditEvent.seq)))
    return list(session.scalars(query))


def _cited(session: Session, row: ModelVersion, lineage: dict[str, str]) -> list[AuditEvent]:
    """The recorded events behind the version's facts (the release itself not yet included)."""
    cited = [e for e in _events(session, version_resource(row.model_name, row.version), _VERSION_EVENTS) if json.loads(e.details).get("version_id", row.id) == row.id]
    dataset_id, job_id = lineage.get("dataset_id", ""), lineage.get("training_job_id", "")
    if row.job_id:
        cited += _events(session, f"job/{job_id}", _JOB_EVENTS)
        # The ledger's entries for this job on its dataset's budget (reserve, charge, release).
        ledger = (select(AuditEvent).where(col(AuditEvent.resource) == f"dataset/{dataset_id}", col(AuditEvent.action).like("privacy.%"))
                  .order_by(col(AuditEvent.seq)))
        cited += [e for e in session.scalars(ledger) if json.loads(e.details).get("job_id") == job_id]
        name = lineage.get("dataset_name", "")
        cited += [e for e in _events(session, f"dataset/{name}", ("ingestion.CreateDataset",)) if json.loads(e.details).get("dataset_id") == dataset_id]
    return sorted(cited, key=lambda e: e.seq)


def issue_attestation(session: Session, row: ModelVersion, *, release_seq: int, signer: AttestationSigner, team: str, log_origin: str) -> str:
    """The DSSE envelope (JSON text) for `row`, which is being released by the event at
    `release_seq` in this same transaction."""
    lineage = json.loads(row.lineage_json)
    approvals = list(session.scalars(select(ModelApproval).where(col(ModelApproval.version_id) == row.id).order_by(col(ModelApproval.at_us))))
    resource = version_resource(row.model_name, row.version)
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
    payload = json.loads(base64.b64decode(json.loads(envelope_json)["payload"]))
    return [int(e["seq"]) for e in payload["predicate"]["auditEvents"]]


def attest_unattested_releases(rt: Runtime, signer_of: Callable[[], AttestationSigner]) -> int:
    """Issue the attestation of every RELEASED version that has none (released before
    attestations existed), citing the audit event of its release; each issue is audited.
    Returns how many were issued. `signer_of` is called only if there is one to issue (it
    may have to make the key)."""
    with rt.read() as session:
        pending = list(session.scalars(select(col(ModelVersion.id)).where(col(ModelVersion.stage) == Stage.RELEASED, col(ModelVersion.attestation_json) == "")))
    if not pending:
        return 0
    signer = signer_of()

    def issue(session: Session, version_id: str) -> None:
        row = session.get(ModelVersion, version_id, with_for_update=True)
        if row is None or row.stage != Stage.RELEASED or row.attestation_json:
            return
        resource = version_resource(row.model_name, row.version)
        release = session.scalars(select(AuditEvent).where(col(AuditEvent.resource) == resource, col(AuditEvent.action) == "registry.ReleaseModelVersion",
                                                           col(AuditEvent.decision) == "allow").order_by(col(AuditEvent.seq).desc())).first()
        if release is None:
            log.warning("%s is RELEASED but its release is not in the audit log; not attested", resource)
            return
        model = session.get(Model, row.model_name)
        row.attestation_json = issue_attestation(session, row, release_seq=release.seq, signer=signer, team=model.team if model else "",
                                                 log_origin=rt.settings.audit_origin)
        session.add(row)
        rt.audit.append(Event(principal="service/registry", action="registry.IssueAttestation", resource=resource, decision="info",
                              details={"version_id": row.id, "release_seq": release.seq, "key_id": signer.keyid}))

    for version_id in pending:

        def unit(session: Session, version_id: str = version_id) -> None:
            issue(session, version_id)

        rt.write(unit)
    return len(pending)


def attestation_document_of(rt: Runtime, record: VersionRecord, envelope: str) -> dict[str, Any]:
    """The attestation `envelope` of `record` with an inclusion proof, against a checkpoint
    signed now, of every audit event it cites (docs/attestation.md). Raises DataLoss when a
    cited event is missing from the log."""
    checkpoint = rt.checkpointer.checkpoint_now()
    bundles = []
    with rt.read() as session:
        reader = SqlNodeReader(session)
        for seq in cited_seqs(envelope):
            event = session.get(AuditEvent, seq)
            if event is None:
                raise DataLoss(f"audit event {seq}, cited by the attestation of {record.model_name}:{record.version}, is missing from the log")
            bundles.append(make_bundle(leaf=event.leaf, index=seq, checkpoint_note=checkpoint.note, reader=reader))
    return attestation_document(json.loads(envelope), bundles)

"""Registering a new version: whose ownership decides the upload, and the one transaction
that records the version, its facts and its audit event.

A version the training service registers for a job is *established* only if it agrees with
that job's record (`established.establish`), and its lineage, guarantee, evaluation and
personal-data fact then come from Privet's records; anything an uploader sends is
*claimed*, and a claimed version is presumed trained on personal data. Who may add
versions to a model is decided by the ownership policy (`governance.policy.ownership`).
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from privet.governance.audit.log import Event
from privet.governance.basemodels.checker import BaseFacts
from privet.governance.crypto import KeyEncryptionKeys, SealedWeights
from privet.governance.errors import PermissionDenied
from privet.governance.identity.principals import Principal
from privet.governance.policy.ownership import acting_principal, may, require
from privet.governance.registry._rekeying import registered_key
from privet.governance.registry.base_models import base_facts_json, lineage_with_named_base
from privet.governance.registry.established import CLAIMED, ESTABLISHED, establish, job_of
from privet.governance.registry.gates import Stage
from privet.governance.registry.ownership import owned_model
from privet.governance.registry.records import VersionRecord, VersionSpec, column_json, now_us, version_record, version_resource
from privet.governance.registry.weights_format import TensorInfo
from privet.governance.runtime import Runtime
from privet.governance.store.registry_tables import Model, ModelUpload, ModelVersion

__all__ = ["acting_for", "audit_refusal", "insert_version", "may_add_version"]


def acting_for(rt: Runtime, principal: Principal, spec: VersionSpec) -> Principal:
    """Whose ownership decides an upload: the uploader's, or, for the training service,
    the submitter of the job it registers (a fact of the job's record, not the message)."""
    if principal.id.kind != "service":
        return principal
    with rt.read() as session:
        job = job_of(session, spec.lineage)
    return acting_principal(rt, job.submitted_by) if job is not None else principal


def may_add_version(rt: Runtime, principal: Principal, acting: Principal, spec: VersionSpec) -> None:
    """PermissionDenied (audited) unless the principal (and, for the training service, the
    job's submitter) may add a version to an existing model of that name."""
    with rt.read() as session:
        model = session.get(Model, spec.model_name)
    if model is None:
        return
    require(rt, principal, "model.add-version", owned_model(model))
    if acting is not principal:
        require(rt, acting, "model.add-version", owned_model(model))


def audit_refusal(rt: Runtime, principal: Principal, spec: VersionSpec, exc: PermissionDenied) -> None:
    """Record a registration refused inside its transaction (another team made the model
    name meanwhile): that transaction rolled back, so its own denial did not commit."""
    rt.record(Event(principal=principal.id.principal, action="model.add-version", resource=f"model/{spec.model_name}",
                    decision="deny", details={"reason": exc.message}))


def insert_version(rt: Runtime, keyring: KeyEncryptionKeys, principal: Principal, acting: Principal, spec: VersionSpec, version_id: str,
                   sealed: SealedWeights, blob_digest: str, tensors: list[TensorInfo], *, base_facts: BaseFacts | None = None) -> VersionRecord:
    """The version row (the model's too, if new), its audit event, and the upload record's
    deletion, in one transaction; retried when a replica created the same new model at once.
    Raises PermissionDenied when the model was created meanwhile by someone the principal
    may not add versions for, and what `establish` and `registered_key` raise."""
    who = principal.id.principal

    def unit(session: Session) -> VersionRecord:
        now = now_us()
        kek_id, wrapped_key = registered_key(session, keyring, version_id)
        guarantee = dict(spec.guarantee) if spec.guarantee is not None else None
        lineage, metrics, job_id = dict(spec.lineage), dict(spec.metrics), None
        if principal.id.kind == "service" and principal.name == "training":
            facts = establish(session, model_name=spec.model_name, weights_digest=sealed.digest, lineage=spec.lineage,
                              guarantee=guarantee, code_version=spec.lineage.get("code_version", ""))
            provenance, lineage, guarantee, metrics, job_id = ESTABLISHED, facts.lineage, facts.guarantee, facts.metrics, facts.job.id
            trainer, personal = facts.trainer, facts.dataset.personal or spec.trained_on_personal_data
        elif base_facts is not None:
            # A base model: pre-trained elsewhere, on no data Privet holds (its lineage names
            # none); the files' facts are the registry's own (governance/registry/base_models).
            provenance, trainer, personal = CLAIMED, who, False
        else:
            # A user who uploads weights is their trainer, whatever the lineage says; and
            # what the weights were trained on is unknown: presumed personal (an operator
            # may declare otherwise), never less than a dataset its lineage names.
            provenance, trainer, personal = CLAIMED, who, True
            lineage = lineage_with_named_base(lineage, spec.architecture, spec.preprocessing_json)
        model = session.get(Model, spec.model_name, with_for_update=True)
        if model is None:
            owner = acting_principal(rt, acting)
            model = Model(name=spec.model_name, owner=owner.id.principal, team=owner.team, created_us=now, latest_version=0)
            session.add(model)
        elif not (may(rt, principal, "model.add-version", owned_model(model))[0] and may(rt, acting, "model.add-version", owned_model(model))[0]):
            raise PermissionDenied(f"{acting.id.principal} may not add a version to model {spec.model_name!r} (created concurrently by {model.owner})")
        model.latest_version += 1
        row = ModelVersion(
            id=version_id, model_name=spec.model_name, version=model.latest_version, stage=Stage.REGISTERED,
            digest=sealed.digest, size_bytes=sealed.size, blob_digest=blob_digest, kek_id=kek_id,
            wrapped_key=wrapped_key, erased=False, tensors_json=column_json([t.to_json() for t in tensors]),
            architecture=spec.architecture, signature_json=column_json({"inputs": spec.inputs, "outputs": spec.outputs}),
            metrics_json=column_json(metrics), lineage_json=column_json(lineage), has_guarantee=guarantee is not None,
            dp_epsilon=guarantee.get("epsilon") if guarantee else None, dp_delta=guarantee.get("delta") if guarantee else None,
            guarantee_json=column_json(guarantee or {}), trained_on_personal_data=personal, trainer=trainer,
            preprocessing_json=spec.preprocessing_json if base_facts is None else base_facts_json(base_facts, spec), description=spec.description, created_by=who, created_us=now,
            thresholds_json="{}", provenance=provenance, job_id=job_id,
        )
        session.add(row)
        session.flush()
        session.execute(delete(ModelUpload).where(col(ModelUpload.version_id) == version_id))
        rt.audit.append(Event(
            principal=who, action="registry.CreateModelVersion", resource=version_resource(spec.model_name, row.version),
            decision="allow",
            details={"version_id": version_id, "digest": sealed.digest, "size": sealed.size, "blob": blob_digest,
                     "kek_id": kek_id, "tensors": len(tensors), "architecture": spec.architecture,
                     "has_guarantee": guarantee is not None, "trained_on_personal_data": personal,
                     "stated_personal_data": spec.trained_on_personal_data, "provenance": provenance, "training_job_id": job_id or "",
                     "trainer": trainer, "lineage": lineage, **({"claimed_lineage": spec.lineage} if provenance == CLAIMED else {}),
                     **({"base": {"model_type": base_facts.model_type, "parameters": base_facts.parameters, "license": spec.base_license,
                                  "source": spec.base_source, "files": base_facts.files}} if base_facts is not None else {})},
        ))
        return version_record(row, [], model)

    for attempt in range(3):  # two replicas creating the same new model: one insert loses, retry
        try:
            return rt.write(unit)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")

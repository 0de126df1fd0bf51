"""The model registry: sealed weights, facts, and stage transitions decided by Cedar.

    registry = ModelRegistry(runtime)                 # keyring: PRIVET_HOME/keys by default
    record = registry.create_version(alice, spec, chunks)
    registry.request_release(alice, "m", 1, thresholds={"accuracy": 0.9})
    registry.approve(dana, "m", 1); registry.release(bob, "m", 1)
    for piece in registry.download(app, "m", 1): ...

Writes follow one order so that nothing half-done is ever visible: weights are sealed into
a temporary blob under a fresh data key; an upload record (the wrapped data key, this
host and this process's pid and start time) is committed; the blob is committed (fsync +
rename); only then are the version row and its audit event inserted and the upload record
deleted, in one transaction. If anything fails on the way, the blob is removed again; if
the process is killed, the blob store sweeps its temporary and the next registry start on
this host recognises the committed-but-unregistered blob by its upload record and removes
it (even when the new process has the dead one's pid, as a restarted container's pid 1 has).

A version is only ever registered under the keyring's current key-encryption key: an
upload's data key is wrapped when sealing starts, so one that a rotation overtook is
rewrapped in the transaction that registers it (see `_registered_key`).

Facts are checked, not just stored. A version the training service registers for a job is
*established* only if it agrees with that job's record (`governance.registry.established`),
and its lineage, guarantee, evaluation and personal-data fact then come from Privet's
records; anything an uploader sends is *claimed*: a DP guarantee must still be complete
and in range (`governance.privacy.guarantee.check_stated_guarantee`), and a claimed version
is presumed trained on personal data unless an operator declares otherwise
(`declare_personal_data`). Who may add versions to a model, or download its weights, is
decided by the ownership policy (`governance.policy.ownership`). Releasing a version
issues its signed attestation (`governance.registry.attest`) in the same transaction.

Every transition (request, approve, release, revoke) runs inside one write unit: read the
version (locked on PostgreSQL), decide with Cedar over its facts, append the decision to
the audit log, and, if allowed, move the stage with a compare-and-set on the stage read.
A denial commits its audit event and changes nothing; a transition that lost a race
changes nothing and raises FailedPrecondition, so no stage is ever skipped.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from privet.governance.architectures.consistency import check_metadata_matches_weights
from privet.governance.attestation.keys import (
    AttestationSigner,
    ensure_attestation_key,
    load_signer,
)
from privet.governance.attestation.verify import attestation_document
from privet.governance.audit.log import Event
from privet.governance.audit.offline import make_bundle
from privet.governance.audit.storage import SqlNodeReader
from privet.governance.crypto import (
    FileKeyring,
    KeyEncryptionKeys,
    WeightsTampered,
    open_weights,
    rewrap,
    seal_weights,
)
from privet.governance.errors import (
    DataLoss,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from privet.governance.identity.principals import Principal
from privet.governance.jsonlimits import check_json_depth
from privet.governance.paging import page_size as page_size_of
from privet.governance.policy.ownership import Owned, acting_principal, may, require
from privet.governance.privacy.guarantee import check_stated_guarantee, is_real
from privet.governance.privacy.ledger import budget_key
from privet.governance.privacy.limits import MAX_EPSILON
from privet.governance.processes import identity_alive, process_identity
from privet.governance.registry.attest import cited_seqs, issue_attestation
from privet.governance.registry.established import (
    CLAIMED,
    ESTABLISHED,
    establish,
    job_of,
    still_established,
)
from privet.governance.registry.gates import ReleaseFacts, Stage, reasons_for
from privet.governance.registry.ownership import owned_model
from privet.governance.registry.weights_format import SafetensorsChecker, TensorInfo
from privet.governance.runtime import Runtime
from privet.governance.store.dataset_tables import Dataset
from privet.governance.store.privacy_tables import DatasetBudget, PrivacyBudgetRow
from privet.governance.store.registry_tables import (
    Model,
    ModelApproval,
    ModelUpload,
    ModelVersion,
)
from privet.governance.store.tables import AuditEvent

__all__ = ["MAX_EPSILON", "ApprovalRecord", "ModelRecord", "ModelRegistry", "VersionRecord", "VersionSpec"]

log = logging.getLogger("privet.registry")

_SERVICE = "registry"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_DESCRIPTION = 4096


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


def _now_us() -> int:
    return int(time.time() * 1_000_000)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _resource(name: str, version: int) -> str:
    return f"model/{name}/{version}"


class ModelRegistry:
    """Models and versions on one Runtime. Thread-safe (all writes go through the runtime).

    Opening one sweeps uploads that a dead process on this host left unfinished (`sweep`).
    """

    def __init__(self, runtime: Runtime, keyring: KeyEncryptionKeys | None = None, *, chunk_size: int | None = None, sweep: bool = True) -> None:
        self._rt = runtime
        self._keyring = keyring if keyring is not None else FileKeyring(runtime.home.keys)
        self._chunk_size = chunk_size
        self._signer: AttestationSigner | None = None
        if sweep:
            self.sweep_interrupted_uploads()
            self.sweep_erased()
            self.attest_unattested_releases()

    @property
    def keyring(self) -> KeyEncryptionKeys:
        return self._keyring

    # -- creating -------------------------------------------------------------------------
    def create_version(self, principal: Principal, spec: VersionSpec, chunks: Iterable[bytes]) -> VersionRecord:
        """Validate, seal and register one version; returns it at stage REGISTERED.

        `chunks` are the safetensors bytes in order. Raises InvalidArgument (field named)
        for bad metadata or anything that is not safetensors, ResourceExhausted past the
        upload limit. On any error no version and no blob remain.
        """
        _check_spec(spec)
        acting = self._acting_for(principal, spec)
        self._may_add_version(principal, acting, spec)
        version_id = uuid.uuid4().hex
        checker = SafetensorsChecker(field="weights")
        source = _CheckedStream(chunks, checker, self._rt.settings.max_upload_bytes)
        writer = self._rt.blobs.writer()
        try:
            kwargs = {"chunk_size": self._chunk_size} if self._chunk_size else {}
            sealed = seal_weights(source, _Sink(writer), version_id=version_id, keyring=self._keyring, **kwargs)
            tensors = checker.finish()
            check_metadata_matches_weights(spec.architecture, spec.preprocessing_json, tensors, [i.get("name", "") for i in spec.inputs])
            if spec.expected_size and spec.expected_size != sealed.size:
                raise InvalidArgument("metadata.expected_size", f"stated {spec.expected_size} bytes, received {sealed.size}")
            # Before the blob becomes visible, note how to recognise it: should this process
            # die before the version row exists, the next start removes the blob.
            upload = ModelUpload(version_id=version_id, model_name=spec.model_name, kek_id=sealed.kek_id, wrapped_key=sealed.wrapped_key,
                                 host=_writer_host(), pid=os.getpid(), started_us=_now_us())
            self._rt.write(lambda session: session.add(upload))
        except BaseException:
            writer.abort()
            raise
        try:
            blob_digest = writer.commit()
        except BaseException:
            self._forget_upload(version_id)
            raise
        try:
            return self._insert_version(principal, acting, spec, version_id, sealed, blob_digest, tensors)
        except BaseException as exc:
            self._rt.blobs.delete(blob_digest)  # a fresh data key: no other version shares it
            self._forget_upload(version_id)
            if isinstance(exc, PermissionDenied):  # another team made the model name meanwhile
                self._rt.record(Event(principal=principal.id.principal, action="model.add-version", resource=f"model/{spec.model_name}",
                                      decision="deny", details={"reason": exc.message}))
            raise

    def _acting_for(self, principal: Principal, spec: VersionSpec) -> Principal:
        """Whose ownership decides an upload: the uploader's, or, for the training service,
        the submitter of the job it registers (a fact of the job's record, not the message)."""
        if principal.id.kind != "service":
            return principal
        with self._rt.read() as session:
            job = job_of(session, spec.lineage)
        return acting_principal(self._rt, job.submitted_by) if job is not None else principal

    def _may_add_version(self, principal: Principal, acting: Principal, spec: VersionSpec) -> None:
        """PermissionDenied (audited) unless the principal (and, for the training service, the
        job's submitter) may add a version to an existing model of that name."""
        with self._rt.read() as session:
            model = session.get(Model, spec.model_name)
        if model is None:
            return
        require(self._rt, principal, "model.add-version", owned_model(model))
        if acting is not principal:
            require(self._rt, acting, "model.add-version", owned_model(model))

    def _forget_upload(self, version_id: str) -> None:
        try:
            self._rt.write(lambda session: session.execute(delete(ModelUpload).where(ModelUpload.version_id == version_id)))  # type: ignore[arg-type]
        except Exception:
            log.warning("could not drop the upload record of %s; it is swept at the next start", version_id)

    def sweep_interrupted_uploads(self) -> int:
        """Remove the blobs of uploads that a process on this host left unfinished when it
        died (after its blob was committed, before its version was recorded), and their
        upload records. Returns the number of blobs removed. Called at start."""
        with self._rt.read() as session:
            dead = [u for u in session.scalars(select(ModelUpload)) if _written_here_by_dead_process(u)]
            referenced = set(session.scalars(select(ModelVersion.blob_digest))) if dead else set()
        if not dead:
            return 0
        candidates = [d for d in self._rt.blobs.digests() if d not in referenced]
        removed = 0
        for upload in dead:
            orphan = next((d for d in candidates if self._sealed_for(d, upload)), None)
            if orphan is not None:
                self._rt.blobs.delete(orphan)
                candidates.remove(orphan)
                removed += 1

            def unit(session: Session, upload: ModelUpload = upload, orphan: str | None = orphan) -> None:
                session.execute(delete(ModelUpload).where(ModelUpload.version_id == upload.version_id))
                self._rt.audit.append(Event(principal=f"service/{_SERVICE}", action="registry.SweepInterruptedUpload", resource=f"model/{upload.model_name}",
                                            decision="info", details={"version_id": upload.version_id, "pid": upload.pid, "writer": upload.host, "removed_blob": orphan}))

            self._rt.write(unit)
        return removed

    def _sealed_for(self, digest: str, upload: ModelUpload) -> bool:
        """Whether blob `digest` opens as the upload's version under its data key."""
        try:
            with self._rt.blobs.open(digest) as blob:
                chunks = open_weights(blob, version_id=upload.version_id, kek_id=upload.kek_id, wrapped_key=upload.wrapped_key,
                                      keyring=self._keyring, expected_digest=None)
                try:
                    next(chunks)
                finally:
                    chunks.close()
            return True
        except (WeightsTampered, NotFound, StopIteration):
            return False

    def _insert_version(self, principal: Principal, acting: Principal, spec, version_id, sealed, blob_digest, tensors: list[TensorInfo]) -> VersionRecord:  # type: ignore[no-untyped-def]
        who = principal.id.principal

        def unit(session: Session) -> VersionRecord:
            now = _now_us()
            kek_id, wrapped_key = self._registered_key(session, version_id)
            guarantee = dict(spec.guarantee) if spec.guarantee is not None else None
            lineage, metrics, job_id = dict(spec.lineage), dict(spec.metrics), None
            if principal.id.kind == "service" and principal.name == "training":
                facts = establish(session, model_name=spec.model_name, weights_digest=sealed.digest, lineage=spec.lineage,
                                  guarantee=guarantee, code_version=spec.lineage.get("code_version", ""))
                provenance, lineage, guarantee, metrics, job_id = ESTABLISHED, facts.lineage, facts.guarantee, facts.metrics, facts.job.id
                trainer, personal = facts.trainer, facts.dataset.personal or spec.trained_on_personal_data
            else:
                # A user who uploads weights is their trainer, whatever the lineage says; and
                # what the weights were trained on is unknown: presumed personal (an operator
                # may declare otherwise), never less than a dataset its lineage names.
                provenance, trainer, personal = CLAIMED, who, True
            model = session.get(Model, spec.model_name, with_for_update=True)
            if model is None:
                owner = acting_principal(self._rt, acting)
                model = Model(name=spec.model_name, owner=owner.id.principal, team=owner.team, created_us=now, latest_version=0)
                session.add(model)
            elif not (may(self._rt, principal, "model.add-version", owned_model(model))[0] and may(self._rt, acting, "model.add-version", owned_model(model))[0]):
                raise PermissionDenied(f"{acting.id.principal} may not add a version to model {spec.model_name!r} (created concurrently by {model.owner})")
            model.latest_version += 1
            row = ModelVersion(
                id=version_id, model_name=spec.model_name, version=model.latest_version, stage=Stage.REGISTERED,
                digest=sealed.digest, size_bytes=sealed.size, blob_digest=blob_digest, kek_id=kek_id,
                wrapped_key=wrapped_key, erased=False, tensors_json=_dumps([t.to_json() for t in tensors]),
                architecture=spec.architecture, signature_json=_dumps({"inputs": spec.inputs, "outputs": spec.outputs}),
                metrics_json=_dumps(metrics), lineage_json=_dumps(lineage), has_guarantee=guarantee is not None,
                dp_epsilon=guarantee.get("epsilon") if guarantee else None, dp_delta=guarantee.get("delta") if guarantee else None,
                guarantee_json=_dumps(guarantee or {}), trained_on_personal_data=personal, trainer=trainer,
                preprocessing_json=spec.preprocessing_json, description=spec.description, created_by=who, created_us=now,
                thresholds_json="{}", provenance=provenance, job_id=job_id,
            )
            session.add(row)
            session.flush()
            session.execute(delete(ModelUpload).where(ModelUpload.version_id == version_id))
            self._rt.audit.append(Event(
                principal=who, action="registry.CreateModelVersion", resource=_resource(spec.model_name, row.version),
                decision="allow",
                details={"version_id": version_id, "digest": sealed.digest, "size": sealed.size, "blob": blob_digest,
                         "kek_id": kek_id, "tensors": len(tensors), "architecture": spec.architecture,
                         "has_guarantee": guarantee is not None, "trained_on_personal_data": personal,
                         "stated_personal_data": spec.trained_on_personal_data, "provenance": provenance, "training_job_id": job_id or "",
                         "trainer": trainer, "lineage": lineage, **({"claimed_lineage": spec.lineage} if provenance == CLAIMED else {})},
            ))
            return _record(row, [], model)

        for attempt in range(3):  # two replicas creating the same new model: one insert loses, retry
            try:
                return self._rt.write(unit)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _registered_key(self, session: Session, version_id: str) -> tuple[str, bytes]:
        """The upload's data key, wrapped under the keyring's current key-encryption key.

        Sealing wrapped it when the upload began; a rotation since then made another key
        current and rewrapped only the rows it found, so the key is read from the upload
        record (which a rotation rewraps too), locked, and rewrapped here if it is not under
        the current key. A rotation that makes a key current after the check below rewraps
        in a transaction that locks this record first, so it waits for this one to commit
        and then finds the version row; one before the check is seen by it. (Write units are
        also serialised by the audit log's head lock today; this does not rely on that.)
        """
        upload = session.get(ModelUpload, version_id, with_for_update=True)
        if upload is None:
            raise FailedPrecondition(f"the upload record of version {version_id} is gone (swept as interrupted?); upload the weights again")
        if upload.kek_id == self._keyring.active_id:
            return upload.kek_id, upload.wrapped_key
        try:
            return rewrap(upload.kek_id, upload.wrapped_key, self._keyring)
        except WeightsTampered:  # the key file it began under was removed after a rotation
            raise FailedPrecondition(f"the key-encryption key {upload.kek_id} this upload began under is gone; upload the weights again") from None

    # -- reading --------------------------------------------------------------------------
    # With a principal, a read is decided by the ownership policy (`model.read`: the owner's
    # team, reviewers and the services; a model's facts name its data and job) and counted
    # in the audit log; without one (internal callers) it is neither.
    def _may_read(self, principal: Principal | None, model: Model, rpc: str) -> None:
        if principal is None:
            return
        require(self._rt, principal, "model.read", owned_model(model))
        self._rt.count_read(Event(principal=principal.id.principal, action=f"registry.{rpc}", resource=f"model/{model.name}", decision="allow", details={}))

    def _model(self, session: Session, name: str) -> Model:
        model = session.get(Model, name)
        if model is None:
            raise NotFound(f"model {name!r} not found")
        return model

    def get_model(self, name: str, *, principal: Principal | None = None) -> ModelRecord:
        with self._rt.read() as session:
            model = self._model(session, name)
            self._may_read(principal, model, "GetModel")
            return _model_record(session, model)

    def list_models(self, *, page_size: int = 100, page_token: str = "", principal: Principal | None = None) -> tuple[list[ModelRecord], str]:
        """Models by name; with `principal`, only those it may read (a page may then hold fewer)."""
        size = page_size_of(page_size)
        with self._rt.read() as session:
            query = select(Model).order_by(Model.name).limit(size + 1)
            if page_token:
                query = query.where(Model.name > page_token)
            rows = list(session.scalars(query))
            token = rows[size - 1].name if len(rows) > size else ""
            visible = [m for m in rows[:size] if principal is None or may(self._rt, principal, "model.read", owned_model(m))[0]]
            if principal is not None:
                self._rt.count_read(Event(principal=principal.id.principal, action="registry.ListModels", resource="model/*", decision="allow", details={}))
            return [_model_record(session, m) for m in visible], token

    def get_version(self, name: str, version: int = 0, alias: str = "", *, principal: Principal | None = None) -> VersionRecord:
        """`version` > 0, or alias "released" (or "latest") with version 0."""
        with self._rt.read() as session:
            model = self._model(session, name)
            self._may_read(principal, model, "GetModelVersion")
            row = _find_version(session, name, version, alias)
            return _record(row, _approvals(session, row.id), model, _as_of_now(session, row))

    def list_versions(self, name: str, *, page_size: int = 100, page_token: str = "", principal: Principal | None = None) -> tuple[list[VersionRecord], str]:
        size = page_size_of(page_size)
        try:
            after = int(page_token) if page_token else 0
        except ValueError:
            raise InvalidArgument("page.page_token", "not a token this service issued") from None
        with self._rt.read() as session:
            model = self._model(session, name)
            self._may_read(principal, model, "ListModelVersions")
            query = select(ModelVersion).where(ModelVersion.model_name == name, ModelVersion.version > after).order_by(ModelVersion.version).limit(size + 1)
            rows = list(session.scalars(query))
            token = str(rows[size - 1].version) if len(rows) > size else ""
            return [_record(r, _approvals(session, r.id), model, _as_of_now(session, r)) for r in rows[:size]], token

    def download(self, principal: Principal, name: str, version: int) -> Iterator[bytes]:
        """Decrypted weights, chunk by chunk; the download is audited before the first byte.

        The key is unwrapped and the blob opened before this returns. A consumer must treat
        the bytes as unverified until iteration ends without error: every chunk is
        authenticated, the end of the stream and the plaintext digest only at the end.
        Raises FailedPrecondition for erased weights, DataLoss (WeightsTampered) for a
        blob that is missing or does not verify.
        """
        with self._rt.read() as session:
            row = _find_version(session, name, version, "")
            model = session.get(Model, row.model_name)
        require(self._rt, principal, "model.weights", _owned_version(row, model))
        if row.erased or row.wrapped_key is None or row.kek_id is None:
            raise FailedPrecondition(f"the weights of {name}:{row.version} were erased")
        self._rt.record(Event(principal=principal.id.principal, action="registry.DownloadWeights", resource=_resource(name, row.version),
                              decision="allow", details={"version_id": row.id, "digest": row.digest, "size": row.size_bytes}))
        try:
            blob = self._rt.blobs.open(row.blob_digest)
        except NotFound:
            raise DataLoss(f"the sealed weights of {name}:{row.version} are missing from the blob store") from None
        try:
            chunks = open_weights(blob, version_id=row.id, kek_id=row.kek_id, wrapped_key=row.wrapped_key,
                                  keyring=self._keyring, expected_digest=row.digest)
        except BaseException:
            blob.close()
            raise
        return _closing(chunks, blob)

    # -- transitions ----------------------------------------------------------------------
    def request_release(self, principal: Principal, name: str, version: int, *, thresholds: dict[str, float] | None = None, note: str = "") -> VersionRecord:
        """REGISTERED -> CANDIDATE; records the metric thresholds later gates check."""
        limits = {str(k): float(v) for k, v in (thresholds or {}).items()}
        for key, value in limits.items():
            if not math.isfinite(value):
                raise InvalidArgument(f"metric_thresholds[{key}]", "must be a finite number")
        now = _now_us()
        who = principal.id.principal
        return self._transition(
            principal, name, version, action="model.request", rpc="RequestRelease", from_stages=(Stage.REGISTERED,), to=Stage.CANDIDATE,
            changes={"requested_by": who, "requested_us": now, "thresholds_json": _dumps(limits)},
            facts_override={"requester": who, "thresholds": limits}, note=note,
        )

    def approve(self, principal: Principal, name: str, version: int, *, note: str = "") -> VersionRecord:
        """CANDIDATE -> APPROVED, by an approver other than the requester and the trainer."""
        who = principal.id.principal

        def add_approval(session: Session, row: ModelVersion) -> None:
            session.add(ModelApproval(version_id=row.id, principal=who, at_us=_now_us(), note=note))

        return self._transition(principal, name, version, action="model.approve", rpc="ApproveRelease", from_stages=(Stage.CANDIDATE,), to=Stage.APPROVED, also=add_approval, note=note)

    def release(self, principal: Principal, name: str, version: int) -> VersionRecord:
        """APPROVED -> RELEASED, by a release manager; the version's attestation is issued and
        stored in the same transaction (nothing is released without one)."""
        signer = self._attestation_signer()

        def attest(session: Session, row: ModelVersion, seq: int) -> None:
            fresh = session.get(ModelVersion, row.id, populate_existing=True)
            assert fresh is not None
            model = session.get(Model, row.model_name)
            fresh.attestation_json = issue_attestation(session, fresh, release_seq=seq, signer=signer, team=model.team if model else "",
                                                       log_origin=self._rt.settings.audit_origin)
            session.add(fresh)

        return self._transition(principal, name, version, action="model.release", rpc="ReleaseModelVersion", from_stages=(Stage.APPROVED,), to=Stage.RELEASED,
                                changes={"released_by": principal.id.principal, "released_us": _now_us()}, after=attest)

    def _attestation_signer(self) -> AttestationSigner:
        """The registry's attestation key (made by `privet init`; made here for a home from
        before attestations, never overwritten)."""
        if self._signer is None:
            ensure_attestation_key(self._rt.home.keys)
            self._signer = load_signer(self._rt.home.keys)
        return self._signer

    def attest_unattested_releases(self) -> int:
        """Issue the attestation of every RELEASED version that has none (released before
        attestations existed), citing the audit event of its release; each issue is audited.
        Returns how many were issued. Called at start."""
        with self._rt.read() as session:
            pending = list(session.scalars(select(ModelVersion.id).where(ModelVersion.stage == Stage.RELEASED, ModelVersion.attestation_json == "")))
        if not pending:
            return 0
        signer = self._attestation_signer()

        def issue(session: Session, version_id: str) -> None:
            row = session.get(ModelVersion, version_id, with_for_update=True)
            if row is None or row.stage != Stage.RELEASED or row.attestation_json:
                return
            resource = _resource(row.model_name, row.version)
            release = session.scalars(select(AuditEvent).where(AuditEvent.resource == resource, AuditEvent.action == "registry.ReleaseModelVersion",
                                                               AuditEvent.decision == "allow").order_by(AuditEvent.seq.desc())).first()  # type: ignore[attr-defined]
            if release is None:
                log.warning("%s is RELEASED but its release is not in the audit log; not attested", resource)
                return
            model = session.get(Model, row.model_name)
            row.attestation_json = issue_attestation(session, row, release_seq=release.seq, signer=signer, team=model.team if model else "",
                                                     log_origin=self._rt.settings.audit_origin)
            session.add(row)
            self._rt.audit.append(Event(principal=f"service/{_SERVICE}", action="registry.IssueAttestation", resource=resource, decision="info",
                                        details={"version_id": row.id, "release_seq": release.seq, "key_id": signer.keyid}))

        for version_id in pending:
            self._rt.write(lambda session, v=version_id: issue(session, v))
        return len(pending)

    def attestation_key_id(self) -> str:
        return self._attestation_signer().keyid

    def attestation(self, name: str, version: int = 0, alias: str = "", *, principal: Principal | None = None) -> tuple[VersionRecord, str]:
        """The version and its attestation (DSSE envelope JSON). FailedPrecondition if none
        was issued (the version was never released)."""
        record = self.get_version(name, version, alias, principal=principal)
        if not record.attestation:
            raise FailedPrecondition(f"{name}:{record.version} has no attestation: one is issued when a version is released")
        return record, record.attestation

    def attestation_document(self, name: str, version: int = 0, alias: str = "", *, principal: Principal | None = None) -> tuple[VersionRecord, dict[str, Any]]:
        """The attestation with an inclusion proof, against a checkpoint signed now, of every
        audit event it cites: what `privet models attest` writes (docs/attestation.md)."""
        record, envelope = self.attestation(name, version, alias, principal=principal)
        checkpoint = self._rt.checkpointer.checkpoint_now()
        bundles = []
        with self._rt.read() as session:
            reader = SqlNodeReader(session)
            for seq in cited_seqs(envelope):
                event = session.get(AuditEvent, seq)
                if event is None:
                    raise DataLoss(f"audit event {seq}, cited by the attestation of {name}:{record.version}, is missing from the log")
                bundles.append(make_bundle(leaf=event.leaf, index=seq, checkpoint_note=checkpoint.note, reader=reader))
        return record, attestation_document(json.loads(envelope), bundles)

    def declare_personal_data(self, principal: Principal, name: str, version: int, *, personal: bool, reason: str) -> VersionRecord:
        """An operator's declaration that a claimed version was (or was not) trained on
        personal data (who may: policies/api.cedar). Only before it is released; an
        established version's fact comes from its dataset (declare that instead)."""
        if not reason.strip():
            raise InvalidArgument("reason", "say why (it is kept in the audit log)")
        who = principal.id.principal

        def unit(session: Session) -> VersionRecord:
            row = _find_version(session, name, version, "", lock=True)
            if row.provenance == ESTABLISHED:
                raise FailedPrecondition(f"{name}:{row.version} is established: its personal-data fact is its dataset's (declare it on the dataset)")
            if row.stage in (Stage.RELEASED, Stage.REVOKED):
                raise FailedPrecondition(f"{name}:{row.version} is {row.stage}: declare before it is released")
            if not personal and _lineage_has_personal_data(session, json.loads(row.lineage_json)):
                raise FailedPrecondition(f"{name}:{row.version} names personal data in its lineage; it cannot be declared not personal")
            before = row.trained_on_personal_data
            row.trained_on_personal_data, row.personal_declared_by = personal, ("" if personal else who)
            session.add(row)
            session.flush()
            self._rt.audit.append(Event(principal=who, action="registry.DeclarePersonalData", resource=_resource(name, row.version), decision="allow",
                                        details={"version_id": row.id, "personal": personal, "before": before, "reason": reason}))
            return _record(row, _approvals(session, row.id), session.get(Model, row.model_name))

        return self._rt.write(unit)

    def revoke(self, principal: Principal, name: str, version: int, *, erase: bool = False, reason: str = "") -> VersionRecord:
        """Any stage -> REVOKED. With `erase`, the wrapped data key is dropped: the weights
        can never be decrypted again. A revoked version may still be erased later."""
        changes: dict[str, Any] = {"revoked_by": principal.id.principal, "revoked_us": _now_us(), "revoked_reason": reason}
        if erase:
            changes |= {"wrapped_key": None, "kek_id": None, "erased": True}
        sources = tuple(s for s in Stage.ORDER if s != Stage.REVOKED) + ((Stage.REVOKED,) if erase else ())

        def not_erased_twice(row: ModelVersion) -> str | None:
            return f"the weights of {name}:{row.version} are already erased" if row.erased else None

        record = self._transition(principal, name, version, action="model.revoke", rpc="RevokeModelVersion", from_stages=sources, to=Stage.REVOKED,
                                  changes=changes, note=reason, extra_details={"erase": erase}, precondition=not_erased_twice)
        if erase:
            self._erase_remains(record.blob_digest)
        return record

    def _erase_remains(self, blob_digest: str) -> None:
        """After the erasure committed: the sealed blob goes (its data key is gone already;
        no other version shares a blob), and the database's files keep no copy of the key."""
        self._rt.blobs.delete(blob_digest)
        if not self._rt.scrub() and self._rt.engines.sqlite:
            log.warning("the database's write-ahead log could not be emptied after an erasure (a long reader?); it is retried at the next erasure or start")

    def sweep_erased(self) -> int:
        """Finish erasures a crash interrupted (the blob of an erased version still on disk).
        Returns how many blobs were removed. Called at start."""
        with self._rt.read() as session:
            digests = list(session.scalars(select(ModelVersion.blob_digest).where(ModelVersion.erased.is_(True))))  # type: ignore[attr-defined]
        left = [d for d in digests if self._rt.blobs.exists(d)]
        for digest in left:
            self._erase_remains(digest)
        return len(left)

    def _transition(
        self,
        principal: Principal,
        name: str,
        version: int,
        *,
        action: str,
        rpc: str,
        from_stages: tuple[str, ...],
        to: str,
        changes: dict[str, Any] | None = None,
        facts_override: dict[str, Any] | None = None,
        also: Callable[[Session, ModelVersion], None] | None = None,
        note: str = "",
        extra_details: dict[str, Any] | None = None,
        precondition: Callable[[ModelVersion], str | None] | None = None,
        after: Callable[[Session, ModelVersion, int], None] | None = None,
    ) -> VersionRecord:
        who = principal.id.principal
        engine = self._rt.policies.engine

        def unit(session: Session) -> tuple[VersionRecord | None, PermissionDenied | FailedPrecondition | None]:
            row = _find_version(session, name, version, "", lock=True)
            resource = _resource(name, row.version)
            audit_action = f"registry.{rpc}"
            why = f"{name}:{row.version} is {row.stage}; {rpc} needs {' or '.join(from_stages)}" if row.stage not in from_stages else None
            if why is None and precondition is not None:
                why = precondition(row)
            if why is not None:
                self._rt.audit.append(Event(principal=who, action=audit_action, resource=resource, decision="deny", details={"reason": why, "stage": row.stage}))
                return None, FailedPrecondition(why)
            facts = _facts(session, row, facts_override or {}, epsilon_cap=self._rt.settings.max_dataset_epsilon)
            decision = engine.decide(principal, action, ("ModelVersion", row.id), {"caller": who}, [facts.entity()])
            policy_ids = tuple(sorted(decision.policy_ids))
            details = {"from": row.stage, "to": to, "version_id": row.id, "facts": facts.audit_details(), **(extra_details or {})}
            if note:
                details["note"] = note
            if not decision.allowed:
                reasons = reasons_for(policy_ids, facts, who, action, engine.reason)
                self._rt.audit.append(Event(principal=who, action=audit_action, resource=resource, decision="deny", policy_ids=policy_ids, details=details | {"reasons": list(reasons)}))
                message = f"{who} may not {rpc} {name}:{row.version}: " + "; ".join(reasons) + f" (policies: {', '.join(policy_ids)})"
                return None, PermissionDenied(message, policy_ids=policy_ids, reasons=reasons)
            # Compare-and-set on the stage read above: a concurrent transition that got
            # there first makes this one change nothing (and the unit roll back).
            moved = session.execute(
                update(ModelVersion).where(ModelVersion.id == row.id, ModelVersion.stage == row.stage, ModelVersion.erased == row.erased).values(stage=to, **(changes or {}))
            ).rowcount
            if moved != 1:
                raise FailedPrecondition(f"{name}:{row.version} changed stage concurrently; try again")
            if also is not None:
                also(session, row)
            session.flush()
            seq = self._rt.audit.append(Event(principal=who, action=audit_action, resource=resource, decision="allow", policy_ids=policy_ids, details=details))
            if after is not None:
                after(session, row, seq)
                session.flush()
            fresh = session.get(ModelVersion, row.id, populate_existing=True)
            assert fresh is not None
            return _record(fresh, _approvals(session, row.id), session.get(Model, row.model_name)), None

        record, error = self._rt.write(unit)
        if error is not None:
            raise error
        assert record is not None
        return record

    # -- keys -----------------------------------------------------------------------------
    def rotate_keys(self, principal: Principal) -> tuple[str, int]:
        """Make a new key-encryption key active and rewrap every live data key under it,
        those of uploads in flight included. Blobs are not touched. Returns (new key id,
        number of versions' keys rewrapped)."""
        new_id = self._keyring.rotate()
        who = principal.id.principal

        def unit(session: Session) -> int:
            # Upload records first: an upload registering now holds its record's lock, so this
            # waits for it to commit and the version query below then sees its row.
            in_flight = self._rewrap_uploads(session)
            rows = list(session.scalars(select(ModelVersion).where(ModelVersion.wrapped_key.is_not(None)).with_for_update()))  # type: ignore[union-attr]
            count = 0
            for row in rows:
                assert row.kek_id is not None and row.wrapped_key is not None
                kek_id, wrapped = rewrap(row.kek_id, row.wrapped_key, self._keyring)
                if (kek_id, wrapped) != (row.kek_id, row.wrapped_key):
                    row.kek_id, row.wrapped_key = kek_id, wrapped
                    count += 1
            session.flush()
            self._rt.audit.append(Event(principal=who, action="registry.RotateKeys", resource="keys/kek", decision="allow",
                                        details={"active_key": self._keyring.active_id, "rewrapped": count, "uploads_rewrapped": in_flight}))
            return count

        return new_id, self._rt.write(unit)

    def _rewrap_uploads(self, session: Session) -> int:
        """Rewrap the data keys of uploads not yet registered (and of interrupted ones, so
        that the sweep still recognises their blobs once old key files are removed)."""
        count = 0
        for upload in session.scalars(select(ModelUpload).with_for_update()):
            try:
                kek_id, wrapped = rewrap(upload.kek_id, upload.wrapped_key, self._keyring)
            except WeightsTampered:  # its key file is gone already: its registration fails anyway
                log.warning("the data key of upload %s does not unwrap; left as it is", upload.version_id)
                continue
            if (kek_id, wrapped) != (upload.kek_id, upload.wrapped_key):
                upload.kek_id, upload.wrapped_key = kek_id, wrapped
                count += 1
        session.flush()
        return count


# -- helpers ----------------------------------------------------------------------------------
class _Sink:
    """Adapts BlobWriter (whose write returns None) to the raw-stream contract seal_weights needs."""

    def __init__(self, writer) -> None:  # type: ignore[no-untyped-def]
        self._writer = writer

    def write(self, data: bytes | memoryview) -> int:
        self._writer.write(data)
        return len(data)


class _CheckedStream(io.RawIOBase):
    """A readable stream over uploaded chunks that checks the safetensors framing and the
    size limit as the bytes go by."""

    def __init__(self, chunks: Iterable[bytes], checker: SafetensorsChecker, limit: int) -> None:
        self._chunks = iter(chunks)
        self._checker = checker
        self._limit = limit
        self._pending = memoryview(b"")
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        while not self._pending:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                return 0
            self.size += len(chunk)
            if self.size > self._limit:
                raise ResourceExhausted(f"weights larger than the upload limit of {self._limit} bytes")
            self._checker.feed(chunk)
            self._pending = memoryview(chunk).cast("B")
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count




def _closing(chunks: Iterator[bytes], handle) -> Iterator[bytes]:  # type: ignore[no-untyped-def]
    try:
        yield from chunks
    finally:
        handle.close()


def _check_spec(spec: VersionSpec) -> None:
    if not _NAME.fullmatch(spec.model_name or ""):
        raise InvalidArgument("metadata.model_name", "1-128 characters: letters, digits, '.', '_' or '-', starting with a letter or digit")
    for key, value in spec.metrics.items():
        if not math.isfinite(value):
            raise InvalidArgument(f"metadata.metrics[{key}]", "must be a finite number")
    if spec.guarantee is not None:
        check_stated_guarantee(spec.guarantee, field="metadata.guarantee")
    if spec.expected_size < 0:
        raise InvalidArgument("metadata.expected_size", "must not be negative")
    if len(spec.description) > MAX_DESCRIPTION:
        raise InvalidArgument("metadata.description", f"at most {MAX_DESCRIPTION} characters")
    for which in ("preprocessing_json",):
        text = getattr(spec, which)
        if text:
            check_json_depth(text, field=f"metadata.{which}")  # before the parser's recursion sees it
            try:
                json.loads(text)
            except ValueError:
                raise InvalidArgument(f"metadata.{which}", "must be JSON") from None


def _writer_host() -> str:
    """What an upload record's `host` holds: `<hostname>/<pid>.<start>` (process_identity),
    so that a later process with the same pid is not taken for the uploader."""
    return f"{socket.gethostname()}/{process_identity()}"


def _written_here_by_dead_process(upload: ModelUpload) -> bool:
    """Whether `upload` was recorded on this host by a process that is gone. Records from
    before the start time was kept hold the bare hostname: their pid is all there is."""
    host, _, identity = upload.host.partition("/")
    return host == socket.gethostname() and not identity_alive(identity or str(upload.pid))


# How a lineage may name a dataset: (lineage field, dataset column it matches).
_LINEAGE_TO_DATASET = (("dataset_id", Dataset.id), ("dataset_id", Dataset.name),
                       ("dataset_digest", Dataset.blob_digest), ("raw_digest", Dataset.raw_digest))


def _lineage_has_personal_data(session: Session, lineage: dict[str, str]) -> bool:
    """Whether a dataset that `lineage` names (deleted ones included) is personal data
    (governance/datasets/personal.py). A lineage that names no dataset the platform holds
    says nothing either way."""
    named = [column == lineage[key] for key, column in _LINEAGE_TO_DATASET if lineage.get(key)]
    if not named:
        return False
    return any(d.personal for d in session.scalars(select(Dataset).where(or_(*named))))


def _trained_on_personal_data(session: Session, row: ModelVersion, established: bool) -> bool:
    """The personal-data fact a gate decides on. Established: the job's dataset is personal
    (as it stands now: an operator may have declared it since). Claimed: presumed, unless an
    operator declared the version not personal, and never less than what its lineage names."""
    lineage = json.loads(row.lineage_json)
    if established:
        return _lineage_has_personal_data(session, {"dataset_id": lineage.get("dataset_id", "")}) or row.trained_on_personal_data
    return row.trained_on_personal_data or _lineage_has_personal_data(session, lineage)


def _owned_version(row: ModelVersion, model: Model | None) -> Owned:
    """A version as Cedar sees it for an ownership decision (its model's owner and team, its stage)."""
    facts = ReleaseFacts(version_id=row.id, model=row.model_name, version=row.version, stage=row.stage, owner=model.owner if model else "",
                         trainer=row.trainer, requester=row.requested_by or "", approvers=(), team=model.team if model else "", provenance=row.provenance,
                         trained_on_personal_data=row.trained_on_personal_data, has_guarantee=row.has_guarantee, epsilon=None, delta=None)
    entity = facts.entity()
    return Owned("ModelVersion", row.id, entity["attrs"], _resource(row.model_name, row.version))


def _find_version(session: Session, name: str, version: int, alias: str, *, lock: bool = False) -> ModelVersion:
    query = select(ModelVersion).where(ModelVersion.model_name == name)
    if version > 0:
        query = query.where(ModelVersion.version == version)
    elif version == 0 and alias == "released":
        query = query.where(ModelVersion.stage == Stage.RELEASED).order_by(ModelVersion.version.desc()).limit(1)  # type: ignore[attr-defined]
    elif version == 0 and alias == "latest":
        query = query.order_by(ModelVersion.version.desc()).limit(1)  # type: ignore[attr-defined]
    else:
        raise InvalidArgument("version", "give a version number, or version 0 with alias \"released\" or \"latest\"")
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).first()
    if row is None:
        what = f"{name}:{version}" if version > 0 else f"{name} ({alias})"
        raise NotFound(f"model version {what} not found")
    return row


def _approvals(session: Session, version_id: str) -> list[ApprovalRecord]:
    rows = session.scalars(select(ModelApproval).where(ModelApproval.version_id == version_id).order_by(ModelApproval.at_us))
    return [ApprovalRecord(a.principal, a.at_us, a.note) for a in rows]


def _lineage_epsilon_spent(session: Session, lineage: dict[str, str]) -> float | None:
    """The composed ε spent on the privacy budget of the data `lineage` names (the largest,
    should it name several budgets), deleted datasets included: their budgets stay spent.
    None when it names no data the ledger holds a budget for."""
    named = [column == lineage[key] for key, column in _LINEAGE_TO_DATASET if lineage.get(key)]
    ids = list(session.scalars(select(Dataset.id).where(or_(*named)))) if named else []
    budgets = set(session.scalars(select(DatasetBudget.budget_id).where(DatasetBudget.dataset_id.in_(ids)))) if ids else set()
    if lineage.get("raw_digest"):
        budgets.add(budget_key(lineage["raw_digest"]))
    spent = list(session.scalars(select(PrivacyBudgetRow.spent_micro).where(PrivacyBudgetRow.budget_id.in_(budgets)))) if budgets else []
    return max(spent) / 1e6 if spent else None


def _facts(session: Session, row: ModelVersion, override: dict[str, Any], *, epsilon_cap: float | None = None) -> ReleaseFacts:
    model = session.get(Model, row.model_name)
    established = still_established(session, row)
    values: dict[str, Any] = {
        "version_id": row.id,
        "model": row.model_name,
        "version": row.version,
        "stage": row.stage,
        "owner": model.owner if model else "",
        "trainer": row.trainer,
        "requester": row.requested_by or "",
        "approvers": tuple(a.principal for a in _approvals(session, row.id)),
        "team": model.team if model else "",
        "provenance": ESTABLISHED if established else CLAIMED,
        "trained_on_personal_data": _trained_on_personal_data(session, row, established),
        "has_guarantee": _has_usable_guarantee(row),
        "epsilon": row.dp_epsilon,
        "delta": row.dp_delta,
        "metrics": json.loads(row.metrics_json),
        "thresholds": json.loads(row.thresholds_json),
        "dataset_epsilon_spent": _lineage_epsilon_spent(session, json.loads(row.lineage_json)),
        "dataset_epsilon_cap": epsilon_cap,
    }
    values.update(override)
    return ReleaseFacts(**values)


def _has_usable_guarantee(row: ModelVersion) -> bool:
    """A row registered before guarantees were checked may hold an empty one (epsilon and
    delta 0, the strongest values there are): to a gate, that is no guarantee."""
    eps, delta = row.dp_epsilon, row.dp_delta
    return row.has_guarantee and is_real(eps) and eps > 0 and is_real(delta) and 0 < delta < 1  # type: ignore[operator]


def _model_record(session: Session, model: Model) -> ModelRecord:
    released = session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model_name == model.name, ModelVersion.stage == Stage.RELEASED))
    return ModelRecord(model.name, model.owner, model.created_us, model.latest_version, int(released or 0), model.team)


def _as_of_now(session: Session, row: ModelVersion) -> tuple[str, bool]:
    """The version's provenance and personal-data fact as the gates read them now (its job
    may have failed since, its dataset been declared since), not as they were registered."""
    established = still_established(session, row)
    return (ESTABLISHED if established else CLAIMED), _trained_on_personal_data(session, row, established)


def _record(row: ModelVersion, approvals: list[ApprovalRecord], model: Model | None = None, now: tuple[str, bool] | None = None) -> VersionRecord:
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

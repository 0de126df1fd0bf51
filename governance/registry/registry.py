"""The model registry: sealed weights, facts, and stage transitions decided by Cedar.

    registry = ModelRegistry(runtime)                 # keyring: PRIVET_HOME/keys by default
    record = registry.create_version(alice, spec, chunks)
    registry.request_release(alice, "m", 1, thresholds={"accuracy": 0.9})
    registry.approve(dana, "m", 1); registry.release(bob, "m", 1)
    for piece in registry.download(app, "m", 1): ...

`ModelRegistry` is the facade; each job lives in its own module and is delegated to:

- `records`: the records callers get back (`VersionSpec`, `VersionRecord`, ...) and lookups;
- `validation`: checking what a caller states before anything is written;
- `_staging`: crash-safe staging of an upload's sealed blob (nothing half-done is ever
  visible, whatever fails or wherever the process dies);
- `creation`: the transaction that registers a version, established or claimed;
- `_rekeying`: key rotation, and registering an upload under the current key;
- `reading`, `weights`: reads (ownership-checked, counted) and the sealed weights'
  download and erasure;
- `facts`: a version's facts as the gates read them now, and the personal-data declaration;
- `transitions`: request, approve, release, revoke, each one write unit decided by Cedar;
- `aliases`: names applications resolve, moved through the gates; `pending`: what waits for whom;
- `attest`: the attestation issued at release, and its document with proofs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from privet.governance.attestation.keys import AttestationSigner, ensure_attestation_key, load_signer
from privet.governance.basemodels.checker import BaseFacts
from privet.governance.crypto import FileKeyring, KeyEncryptionKeys, SealedWeights
from privet.governance.errors import FailedPrecondition, PermissionDenied
from privet.governance.identity.principals import Principal
from privet.governance.privacy.limits import MAX_EPSILON
from privet.governance.registry import _rekeying, _staging, aliases, creation, facts, pending, reading, transitions, weights
from privet.governance.registry.attest import attest_unattested_releases, attestation_document_of
from privet.governance.registry.records import ApprovalRecord, ModelRecord, VersionRecord, VersionSpec
from privet.governance.registry.validation import check_spec
from privet.governance.registry.weights_format import TensorInfo
from privet.governance.runtime import Runtime

__all__ = ["MAX_EPSILON", "ApprovalRecord", "ModelRecord", "ModelRegistry", "VersionRecord", "VersionSpec"]


class ModelRegistry:
    """Models and versions on one Runtime. Thread-safe (all writes go through the runtime).

    Opening one sweeps uploads that a dead process on this host left unfinished, finishes
    erasures a crash interrupted, and attests releases from before attestations (`sweep`).
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
        upload limit. On any error no version and no blob remain (`_staging`).
        """
        check_spec(spec)
        acting = creation.acting_for(self._rt, principal, spec)
        creation.may_add_version(self._rt, principal, acting, spec)
        staged = _staging.stage_upload(self._rt, self._keyring, spec, chunks, chunk_size=self._chunk_size)
        try:
            return self._insert_version(principal, acting, spec, staged.version_id, staged.sealed, staged.blob_digest, staged.tensors,
                                        staged.base_facts)
        except BaseException as exc:
            _staging.discard(self._rt, staged)
            if isinstance(exc, PermissionDenied):  # another team made the model name meanwhile
                creation.audit_refusal(self._rt, principal, spec, exc)
            raise

    def _insert_version(self, principal: Principal, acting: Principal, spec: VersionSpec, version_id: str, sealed: SealedWeights,
                        blob_digest: str, tensors: list[TensorInfo], base_facts: BaseFacts | None = None) -> VersionRecord:
        # A method (not a direct call) so that tests can make registration fail after staging.
        return creation.insert_version(self._rt, self._keyring, principal, acting, spec, version_id, sealed, blob_digest, tensors,
                                       base_facts=base_facts)

    def sweep_interrupted_uploads(self) -> int:
        """Remove the blobs of uploads that a process on this host left unfinished when it
        died (after its blob was committed, before its version was recorded), and their
        upload records. Returns the number of blobs removed. Called at start."""
        return _staging.sweep_interrupted_uploads(self._rt, self._keyring)

    # -- reading --------------------------------------------------------------------------
    # With a principal, a read is decided by the ownership policy and counted in the audit
    # log; without one (internal callers) it is neither (`reading`).
    def get_model(self, name: str, *, principal: Principal | None = None) -> ModelRecord:
        return reading.get_model(self._rt, name, principal)

    def list_models(self, *, page_size: int = 100, page_token: str = "", principal: Principal | None = None) -> tuple[list[ModelRecord], str]:
        """Models by name; with `principal`, only those it may read (a page may then hold fewer)."""
        return reading.list_models(self._rt, page_size, page_token, principal)

    def get_version(self, name: str, version: int = 0, alias: str = "", *, principal: Principal | None = None) -> VersionRecord:
        """`version` > 0, or alias "released" (or "latest") with version 0."""
        return reading.get_version(self._rt, name, version, alias, principal)

    def list_versions(self, name: str, *, page_size: int = 100, page_token: str = "", principal: Principal | None = None) -> tuple[list[VersionRecord], str]:
        return reading.list_versions(self._rt, name, page_size, page_token, principal)

    def download(self, principal: Principal, name: str, version: int) -> Iterator[bytes]:
        """Decrypted weights, chunk by chunk; the download is audited before the first byte.

        The key is unwrapped and the blob opened before this returns. A consumer must treat
        the bytes as unverified until iteration ends without error: every chunk is
        authenticated, the end of the stream and the plaintext digest only at the end.
        Raises FailedPrecondition for erased weights, DataLoss (WeightsTampered) for a
        blob that is missing or does not verify.
        """
        return weights.download(self._rt, self._keyring, principal, name, version)

    # -- transitions ----------------------------------------------------------------------
    def request_release(self, principal: Principal, name: str, version: int, *, thresholds: dict[str, float] | None = None, note: str = "") -> VersionRecord:
        """REGISTERED -> CANDIDATE; records the metric thresholds later gates check."""
        return transitions.request_release(self._rt, principal, name, version, thresholds=thresholds, note=note)

    def approve(self, principal: Principal, name: str, version: int, *, note: str = "") -> VersionRecord:
        """CANDIDATE -> APPROVED, by an approver other than the requester and the trainer."""
        return transitions.approve(self._rt, principal, name, version, note=note)

    def release(self, principal: Principal, name: str, version: int) -> VersionRecord:
        """APPROVED -> RELEASED, by a release manager; the version's attestation is issued and
        stored in the same transaction (nothing is released without one)."""
        return transitions.release(self._rt, principal, name, version, signer=self._attestation_signer())

    def revoke(self, principal: Principal, name: str, version: int, *, erase: bool = False, reason: str = "") -> VersionRecord:
        """Any stage -> REVOKED, for a `reason` (required); its aliases go with it. With
        `erase`, the wrapped data key is dropped: the weights can never be decrypted again.
        A revoked version may still be erased later."""
        record = transitions.revoke(self._rt, principal, name, version, erase=erase, reason=reason)
        if erase:
            weights.erase_remains(self._rt, record.blob_digest)
        return record

    def set_alias(self, principal: Principal, name: str, alias: str, version: int, *, reason: str) -> VersionRecord:
        """Point `alias` (e.g. "production") at the RELEASED `version`, through the gates."""
        return aliases.set_alias(self._rt, principal, name, alias, version, reason=reason)

    def pending_releases(self, principal: Principal, *, page_size: int = 0, page_token: str = "") -> tuple[list[pending.PendingRelease], str]:
        """What waits for an approver or a release manager, oldest request first."""
        return pending.pending_releases(self._rt, principal, page_size, page_token)

    def sweep_erased(self) -> int:
        """Finish erasures a crash interrupted (the blob of an erased version still on disk).
        Returns how many blobs were removed. Called at start."""
        return weights.sweep_erased(self._rt)

    def declare_personal_data(self, principal: Principal, name: str, version: int, *, personal: bool, reason: str) -> VersionRecord:
        """An operator's declaration that a claimed version was (or was not) trained on
        personal data (who may: policies/api.cedar). Only before it is released; an
        established version's fact comes from its dataset (declare that instead)."""
        return facts.declare_personal_data(self._rt, principal, name, version, personal=personal, reason=reason)

    # -- attestations ---------------------------------------------------------------------
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
        return attest_unattested_releases(self._rt, self._attestation_signer)

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
        return record, attestation_document_of(self._rt, record, envelope)

    # -- keys -----------------------------------------------------------------------------
    def rotate_keys(self, principal: Principal) -> tuple[str, int]:
        """Make a new key-encryption key active and rewrap every live data key under it,
        those of uploads in flight included. Blobs are not touched. Returns (new key id,
        number of versions' keys rewrapped)."""
        return _rekeying.rotate_keys(self._rt, self._keyring, principal)

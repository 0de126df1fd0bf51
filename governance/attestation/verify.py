"""Offline verification of a model-release attestation document.

The document (what `privet models attest` writes) is evidence handed over by whoever
holds it. Trust comes only from the keys the verifier holds: the registry's attestation
public key, and optionally the audit log's verifier key. Every problem with the evidence
is reported as a failed `AttestationReport` naming the first check that failed; only a
malformed *key* (the verifier's own input) raises ValueError.

Document format (docs/attestation.md)::

    {"mediaType": "application/vnd.privet.attestation+json;version=1",
     "dsseEnvelope": <DSSE envelope over an in-toto Statement v1>,
     "auditProofs": [<governance.audit.offline bundle>, ...]}
"""

from __future__ import annotations

import base64
import hashlib
import os
import pathlib
from dataclasses import dataclass
from typing import Any

from privet.governance.attestation.dsse import AttestationInvalid, open_envelope
from privet.governance.attestation.keys import keyid_of, load_public_key
from privet.governance.attestation.statement import (
    loads_strict,
    parse_statement,
    subject_digest,
)
from privet.governance.audit.checkpoint import NoteVerifier, open_checkpoint
from privet.governance.audit.leaf import EventRecord, decode_leaf
from privet.governance.audit.offline import verify_bundle

__all__ = [
    "CREATE_ACTION",
    "MAX_AUDIT_PROOFS",
    "MAX_DOCUMENT_BYTES",
    "MEDIA_TYPE",
    "RELEASE_ACTION",
    "AttestationReport",
    "attestation_document",
    "verify_attestation",
]

MEDIA_TYPE = "application/vnd.privet.attestation+json;version=1"
CREATE_ACTION = "registry.CreateModelVersion"
RELEASE_ACTION = "registry.ReleaseModelVersion"

# Bounds on an untrusted document: the envelope is capped at 4 MiB by dsse; a release
# cites a few dozen audit events at most (creation, requests, approvals, the training job
# and its budget entries, the release), each proof a few KiB.
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
MAX_AUDIT_PROOFS = 256

_DOCUMENT_KEYS = frozenset({"mediaType", "dsseEnvelope", "auditProofs"})
_HASH_CHUNK = 1024 * 1024  # weights files can be GBs: hash them in pieces


@dataclass(frozen=True)
class AttestationReport:
    """The outcome of `verify_attestation`.

    `message` is one plain line: what verified, or the first thing that failed.
    `statement` is the verified in-toto Statement, set only when `ok` is True, so that
    nothing unverified can be read off a failed report by mistake.
    """

    ok: bool
    message: str
    statement: dict[str, Any] | None = None


def attestation_document(envelope: dict[str, Any], audit_bundles: list[dict[str, Any]]) -> dict[str, Any]:
    """The attestation file: the signed envelope plus the audit proofs that back it."""
    return {"mediaType": MEDIA_TYPE, "dsseEnvelope": envelope, "auditProofs": list(audit_bundles)}


def _open_document(document: object) -> dict[str, Any]:
    if isinstance(document, (bytes, bytearray, str)):
        # The raw file: bound its size before parsing, then parse it strictly.
        if len(document) > MAX_DOCUMENT_BYTES:
            raise AttestationInvalid(f"the attestation document is larger than {MAX_DOCUMENT_BYTES} bytes")
        document = loads_strict(document if isinstance(document, str) else bytes(document), "the attestation document")
    if not isinstance(document, dict):
        raise AttestationInvalid("the attestation document is not a JSON object")
    if set(document) != _DOCUMENT_KEYS:
        raise AttestationInvalid(f"the attestation document must have exactly the keys {sorted(_DOCUMENT_KEYS)}")
    if document["mediaType"] != MEDIA_TYPE:
        raise AttestationInvalid(f"the attestation document's mediaType is {document['mediaType']!r}, not {MEDIA_TYPE!r}")
    proofs = document["auditProofs"]
    if not isinstance(proofs, list):
        raise AttestationInvalid("the attestation document's auditProofs is not a list")
    if len(proofs) > MAX_AUDIT_PROOFS:
        raise AttestationInvalid(f"the attestation document has {len(proofs)} audit proofs, more than the {MAX_AUDIT_PROOFS} allowed")
    return document


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _model_of(predicate: dict[str, Any], digest: str) -> dict[str, Any]:
    """predicate["model"], with the fields the checks below rely on."""
    model = predicate.get("model")
    if not isinstance(model, dict):
        raise AttestationInvalid("the predicate has no model object")
    if not isinstance(model.get("name"), str) or not model["name"]:
        raise AttestationInvalid("the predicate's model has no name")
    if not _is_int(model.get("version")):
        raise AttestationInvalid("the predicate's model version is not an integer")
    if not isinstance(model.get("version_id"), str) or not model["version_id"]:
        raise AttestationInvalid("the predicate's model has no version_id")
    weights = model.get("weights")
    if isinstance(weights, dict) and "sha256" in weights and weights["sha256"] != digest:
        # The predicate repeats the digest for readers of the predicate alone; two
        # different digests in one signed statement would leave them guessing.
        raise AttestationInvalid("the predicate's model weights sha256 differs from the statement's subject digest")
    return model


def _sha256_of(weights: bytes | bytearray | memoryview | os.PathLike[str]) -> str:
    if isinstance(weights, (bytes, bytearray, memoryview)):
        return hashlib.sha256(weights).hexdigest()
    if not isinstance(weights, os.PathLike):
        raise TypeError(f"weights must be bytes or a path, not {type(weights).__name__}")
    hasher = hashlib.sha256()
    try:
        with open(weights, "rb") as f:
            while chunk := f.read(_HASH_CHUNK):
                hasher.update(chunk)
    except OSError as exc:
        raise AttestationInvalid(f"cannot read the weights file {os.fspath(weights)}: {exc.strerror or exc}") from None
    return hasher.hexdigest()


def _listed_events(predicate: dict[str, Any]) -> list[dict[str, Any]]:
    """predicate["auditEvents"]: the events the registry says record this release."""
    listed = predicate.get("auditEvents")
    if not isinstance(listed, list):
        raise AttestationInvalid("the predicate has no auditEvents list")
    for i, entry in enumerate(listed):
        if (
            not isinstance(entry, dict)
            or not _is_int(entry.get("seq"))
            or entry["seq"] < 0
            or not isinstance(entry.get("action"), str)
            or not isinstance(entry.get("resource"), str)
        ):
            raise AttestationInvalid(f"the predicate's auditEvents[{i}] is not {{seq: integer, action: text, resource: text}}")
    return listed


def _log_origin(predicate: dict[str, Any]) -> str | None:
    """The audit log the predicate names (predicate["auditLog"]["origin"]), if it names one."""
    log = predicate.get("auditLog")
    if log is None:
        return None
    if not isinstance(log, dict) or not isinstance(log.get("origin"), str):
        raise AttestationInvalid("the predicate's auditLog has no origin")
    origin: str = log["origin"]
    return origin


def _proven_events(bundles: list[Any], audit_key: str, origin: str | None) -> dict[int, EventRecord]:
    """Verify every bundle; return the event each one proves, by seq.

    The event is decoded from the bundle's leaf (the bytes the inclusion proof covers),
    never taken from the bundle's readable "event" copy."""
    verifier = NoteVerifier.from_text(audit_key)
    proven: dict[int, EventRecord] = {}
    roots: dict[tuple[str, int], bytes] = {}
    for i, bundle in enumerate(bundles):
        try:
            report = verify_bundle(bundle, audit_key)
        except (TypeError, ValueError, KeyError, AttributeError, RecursionError):
            # The audit key was checked up front, so this is a malformed bundle.
            raise AttestationInvalid(f"audit proof {i} is malformed") from None
        if not report.ok:
            raise AttestationInvalid(f"audit proof {i} does not verify: {report.message}")
        checkpoint = open_checkpoint(bundle["checkpoint"], verifier)  # verified above: cannot fail
        if origin is not None and checkpoint.origin != origin:
            # The statement names the log its events are in; a proof from any other is not evidence.
            raise AttestationInvalid(f"audit proof {i} is from the log {checkpoint.origin!r}, not {origin!r} that the predicate names")
        event = decode_leaf(base64.b64decode(bundle["leaf"], validate=True))
        # Each bundle is sound on its own; two that disagree are signed proof of a fork.
        seen_root = roots.setdefault((checkpoint.origin, checkpoint.size), checkpoint.root_hash)
        seen = proven.get(event.seq)
        if seen_root != checkpoint.root_hash or (seen is not None and seen != event):
            raise AttestationInvalid(
                f"audit proof {i} contradicts an earlier one (different events at seq {event.seq}, or different roots "
                f"at size {checkpoint.size}), both signed by the audit key: the audit log forked"
            )
        proven[event.seq] = event
    return proven


def _detail(event: EventRecord, key: str) -> Any:
    # Leaves written by the registry always hold an object; a crafted one may not.
    return event.details.get(key) if isinstance(event.details, dict) else None


def _check_audit(bundles: list[Any], predicate: dict[str, Any], digest: str, version_id: str, audit_key: str) -> str:
    """The audit proofs bind the statement's facts to the signed public log."""
    listed = _listed_events(predicate)
    proven = _proven_events(bundles, audit_key, _log_origin(predicate))
    for entry in listed:
        seq, action, resource = entry["seq"], entry["action"], entry["resource"]
        event = proven.get(seq)
        if event is None:
            raise AttestationInvalid(f"no audit proof covers the listed event seq {seq} ({action} on {resource})")
        if (event.action, event.resource) != (action, resource):
            raise AttestationInvalid(
                f"the audit log's event seq {seq} is {event.action} on {event.resource}, not {action} on {resource} as the predicate says"
            )
    creations = [proven[e["seq"]] for e in listed if e["action"] == CREATE_ACTION]
    releases = [proven[e["seq"]] for e in listed if e["action"] == RELEASE_ACTION]
    if not creations:
        raise AttestationInvalid(f"the predicate lists no {CREATE_ACTION} audit event")
    if not releases:
        raise AttestationInvalid(f"the predicate lists no {RELEASE_ACTION} audit event")
    for event in creations:
        if _detail(event, "digest") != digest:
            raise AttestationInvalid(
                f"the audit log's {CREATE_ACTION} event (seq {event.seq}) records weights digest "
                f"{_detail(event, 'digest')!r}, not the attested {digest}"
            )
    for event in releases:
        if event.decision != "allow":
            raise AttestationInvalid(f"the audit log's {RELEASE_ACTION} event (seq {event.seq}) was a {event.decision!r}, not an allowed release")
        if _detail(event, "version_id") != version_id:
            raise AttestationInvalid(
                f"the audit log's {RELEASE_ACTION} event (seq {event.seq}) released version_id "
                f"{_detail(event, 'version_id')!r}, not the attested {version_id!r}"
            )
    seqs = ", ".join(str(e["seq"]) for e in listed)
    return f"the audit log proves events {seqs} (creation with this digest, allowed release of this version)"


def verify_attestation(
    document: object,
    *,
    attestation_key_pem: str | bytes,
    audit_key: str | None = None,
    weights: bytes | pathlib.Path | None = None,
    expect_model: tuple[str, int] | None = None,
) -> AttestationReport:
    """Check an attestation document; never raises for bad evidence.

    `document` is the parsed document, or the raw file (bytes/str, parsed strictly here).
    Checks, stopping at the first failure: the document's shape and mediaType; the DSSE
    signature with `attestation_key_pem`; the Statement's shape; the SHA-256 of `weights`
    (bytes, or a file path hashed in 1 MiB pieces) against the subject digest; the model
    name and version against `expect_model`; and, with `audit_key`, every audit proof and
    the events the predicate lists (see docs/attestation.md). Raises ValueError for a
    malformed attestation key or audit key, and TypeError for `weights` that are neither
    bytes nor a path (a str could be either, so it is refused).
    """
    public_key = load_public_key(attestation_key_pem)
    if audit_key is not None:
        if not isinstance(audit_key, str):
            raise ValueError("the audit key must be the verifier key text")
        NoteVerifier.from_text(audit_key)  # raises ValueError now, not halfway through
    try:
        doc = _open_document(document)
        payload = open_envelope(doc["dsseEnvelope"], attestation_key_pem)
        statement = parse_statement(payload)
        digest = subject_digest(statement)
        predicate = statement["predicate"]
        model = _model_of(predicate, digest)
        what = f"{model['name']} v{model['version']}"
        parts = [f"{what} (weights sha256 {digest}) is attested by {keyid_of(public_key)}"]
        if weights is not None:
            actual = _sha256_of(weights)
            if actual != digest:
                raise AttestationInvalid(f"the weights' sha256 is {actual}, not the attested {digest}")
            parts.append("the weights match")
        if expect_model is not None:
            expected_name, expected_version = expect_model
            if (model["name"], model["version"]) != (expected_name, expected_version):
                raise AttestationInvalid(f"the attestation is for {what}, not {expected_name} v{expected_version}")
        if audit_key is not None:
            parts.append(_check_audit(doc["auditProofs"], predicate, digest, model["version_id"], audit_key))
        else:
            parts.append("the audit proofs were NOT checked (no audit key given)")
    except AttestationInvalid as bad:
        return AttestationReport(ok=False, message=bad.message)
    return AttestationReport(ok=True, message="; ".join(parts), statement=statement)

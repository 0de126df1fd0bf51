"""Signed model-release attestations: an in-toto Statement v1 in a DSSE envelope.

When the registry releases a model version it signs a statement of the facts behind it
(weights digest, lineage, privacy guarantee, evaluation, approvals) with its Ed25519
attestation key, and attaches audit-log inclusion proofs for the events that recorded
them. Anyone holding the public keys can check the result offline, with this package or
with any DSSE/in-toto tool. Pure library: no gRPC, no database. See docs/attestation.md.

- `keys`: the attestation key pair and its files (keys/attestation.key, .pub).
- `dsse`: DSSE v1 envelopes (PAE, sign, strict open).
- `statement`: the Statement v1 and its predicate type; strict JSON reading.
- `verify`: the attestation document, and offline verification of it.
"""

from __future__ import annotations

from privet.governance.attestation.dsse import (
    PAYLOAD_TYPE,
    AttestationInvalid,
    open_envelope,
    pae,
    sign_envelope,
)
from privet.governance.attestation.keys import (
    AttestationSigner,
    ensure_attestation_key,
    keyid_of,
    load_public_key,
    load_signer,
)
from privet.governance.attestation.statement import (
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    parse_statement,
    release_statement,
    statement_bytes,
)
from privet.governance.attestation.verify import (
    MEDIA_TYPE,
    AttestationReport,
    attestation_document,
    verify_attestation,
)

__all__ = [
    "MEDIA_TYPE",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "AttestationInvalid",
    "AttestationReport",
    "AttestationSigner",
    "attestation_document",
    "ensure_attestation_key",
    "keyid_of",
    "load_public_key",
    "load_signer",
    "open_envelope",
    "pae",
    "parse_statement",
    "release_statement",
    "sign_envelope",
    "statement_bytes",
    "verify_attestation",
]

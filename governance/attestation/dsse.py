"""DSSE v1 (Dead Simple Signing Envelope): sign a payload, and open an envelope.

The signature covers the PAE (pre-authentication encoding) of the payload type and the
payload, never the JSON envelope, so the envelope's own serialisation does not matter and
the payload type cannot be swapped without breaking the signature:

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

with LEN the byte length as ASCII decimal and SP one space. Envelope (JSON):
``{"payload": base64(body), "payloadType": type, "signatures": [{"keyid": .., "sig": base64}]}``.

`open_envelope` is a strict consumer: it reads only envelopes shaped exactly like the ones
`sign_envelope` writes (standard, padded base64; no extra fields), because everything it
is given is evidence from someone else and anything it would skip is something a reader
might believe without it having been checked.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.exceptions import InvalidSignature

from privet.governance.attestation.keys import AttestationSigner, keyid_of, load_public_key

__all__ = [
    "MAX_ENVELOPE_BYTES",
    "MAX_SIGNATURES",
    "PAYLOAD_TYPE",
    "AttestationInvalid",
    "open_envelope",
    "pae",
    "sign_envelope",
]

PAYLOAD_TYPE = "application/vnd.in-toto+json"

# Bounds on what an untrusted envelope can make us do: a release statement is a few KiB
# and the registry signs with one key, so these leave ample room and no more.
MAX_ENVELOPE_BYTES = 4 * 1024 * 1024
MAX_SIGNATURES = 16

_ENVELOPE_KEYS = frozenset({"payload", "payloadType", "signatures"})
_SIGNATURE_KEYS = frozenset({"keyid", "sig"})
_ED25519_SIGNATURE_SIZE = 64


class AttestationInvalid(Exception):
    """An attestation failed a check. The message says which, in plain words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: the exact bytes that are signed."""
    type_bytes = payload_type.encode("utf-8")
    body = bytes(payload)
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(body), body)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sign_envelope(payload: bytes, signer: AttestationSigner, payload_type: str = PAYLOAD_TYPE) -> dict[str, Any]:
    """A DSSE envelope over `payload`, signed once by `signer` (keyid = signer.keyid)."""
    body = bytes(payload)
    return {
        "payload": _b64(body),
        "payloadType": payload_type,
        "signatures": [{"keyid": signer.keyid, "sig": _b64(signer.sign(pae(payload_type, body)))}],
    }


def _strict_b64decode(text: str, what: str) -> bytes:
    # Only the canonical form (standard alphabet, padded, no white space) is accepted, so
    # one value has one text and no decoder leniency is left to argue about.
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise AttestationInvalid(f"{what} is not standard base64") from None
    if _b64(raw) != text:
        raise AttestationInvalid(f"{what} is not canonical base64")
    return raw


def _check_shape(envelope: object) -> tuple[str, str, list[dict[str, Any]]]:
    """Shape checks in an order that keeps the cost bounded; returns (payload, type, sigs)."""
    if not isinstance(envelope, dict):
        raise AttestationInvalid("the DSSE envelope is not a JSON object")
    if set(envelope) != _ENVELOPE_KEYS:
        raise AttestationInvalid(f"the DSSE envelope must have exactly the keys {sorted(_ENVELOPE_KEYS)}")
    payload, payload_type, signatures = envelope["payload"], envelope["payloadType"], envelope["signatures"]
    if not isinstance(payload, str):
        raise AttestationInvalid("the DSSE envelope's payload is not a string")
    if not isinstance(payload_type, str):
        raise AttestationInvalid("the DSSE envelope's payloadType is not a string")
    if not isinstance(signatures, list):
        raise AttestationInvalid("the DSSE envelope's signatures is not a list")
    if not signatures:
        raise AttestationInvalid("the DSSE envelope has no signatures")
    if len(signatures) > MAX_SIGNATURES:
        raise AttestationInvalid(f"the DSSE envelope has {len(signatures)} signatures, more than the {MAX_SIGNATURES} allowed")
    size = len(payload) + len(payload_type)
    for i, sig in enumerate(signatures):
        if not isinstance(sig, dict) or "sig" not in sig or not set(sig) <= _SIGNATURE_KEYS:
            raise AttestationInvalid(f"signature {i} must be an object with 'sig' and optionally 'keyid'")
        if not all(isinstance(v, str) for v in sig.values()):
            raise AttestationInvalid(f"signature {i} has a field that is not a string")
        size += sum(len(v) for v in sig.values())
    # Every field is now a string, so this is (within a few bytes of quoting) the JSON size.
    if size > MAX_ENVELOPE_BYTES:
        raise AttestationInvalid(f"the DSSE envelope is larger than {MAX_ENVELOPE_BYTES} bytes")
    return payload, payload_type, signatures


def open_envelope(envelope: object, public_key_pem: str | bytes, payload_type: str = PAYLOAD_TYPE) -> bytes:
    """Check `envelope` and return its payload bytes; raise AttestationInvalid otherwise.

    Accepts the envelope when its payloadType is `payload_type` and at least one of its
    signatures verifies over the PAE with the key in `public_key_pem`. A signature whose
    keyid is set and names another key is skipped (it is someone else's); one without a
    keyid (or with an empty one: DSSE treats them alike) is tried. Raises ValueError for a
    malformed key, since that is the caller's input, not the evidence.
    """
    public_key = load_public_key(public_key_pem)
    keyid = keyid_of(public_key)
    payload_text, found_type, signatures = _check_shape(envelope)
    if found_type != payload_type:
        raise AttestationInvalid(f"the DSSE envelope's payloadType is {found_type!r}, not {payload_type!r}")
    payload = _strict_b64decode(payload_text, "the DSSE envelope's payload")
    message = pae(found_type, payload)
    tried = 0
    for i, sig in enumerate(signatures):
        if sig.get("keyid", "") not in ("", keyid):
            continue
        raw = _strict_b64decode(sig["sig"], f"signature {i}")
        tried += 1
        if len(raw) != _ED25519_SIGNATURE_SIZE:
            continue
        try:
            public_key.verify(raw, message)
        except InvalidSignature:
            continue
        return payload
    if tried == 0:
        raise AttestationInvalid(f"the DSSE envelope has no signature by the attestation key {keyid}")
    raise AttestationInvalid(
        f"the DSSE envelope's signature does not verify with the attestation key {keyid}: "
        "the payload, its type or the signature was altered, or another key signed it"
    )

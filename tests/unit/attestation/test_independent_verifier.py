"""Interoperability with an independent DSSE implementation (securesystemslib, the
library behind in-toto and TUF): what we sign, it verifies; what it signs, we open. This
is what guards against a PAE or envelope mistake that our own round trips would share."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey

from privet.governance.attestation.dsse import (
    PAYLOAD_TYPE,
    AttestationInvalid,
    open_envelope,
    pae,
    sign_envelope,
)
from privet.governance.attestation.keys import AttestationSigner, load_public_key
from privet.governance.attestation.statement import (
    parse_statement,
    release_statement,
    statement_bytes,
)

DIGEST = "ab" * 32


def _statement_payload() -> bytes:
    predicate = {"model": {"name": "churn", "version": 3, "version_id": "cd" * 16}, "note": "caf\u00e9"}
    return statement_bytes(release_statement(subject_name="model/churn/3", weights_sha256=DIGEST, predicate=predicate))


def _sslib_key(signer: AttestationSigner) -> SSlibKey:
    # Build the verifier's key from the published PEM only, as an outside auditor would.
    return SSlibKey.from_crypto(load_public_key(signer.public_pem), keyid=signer.keyid)


def test_securesystemslib_verifies_what_we_sign():
    signer = AttestationSigner.generate()
    payload = _statement_payload()
    envelope = Envelope.from_dict(json.loads(json.dumps(sign_envelope(payload, signer))))
    accepted = envelope.verify([_sslib_key(signer)], 1)
    assert list(accepted) == [signer.keyid]
    assert envelope.payload == payload and envelope.payload_type == PAYLOAD_TYPE
    assert json.loads(envelope.payload)["subject"][0]["digest"]["sha256"] == DIGEST


def test_securesystemslib_computes_the_same_pae():
    payload = _statement_payload()
    assert Envelope(payload, PAYLOAD_TYPE, {}).pae() == pae(PAYLOAD_TYPE, payload)


def test_securesystemslib_rejects_what_we_sign_once_tampered():
    signer = AttestationSigner.generate()
    data = sign_envelope(_statement_payload(), signer)
    data["payload"] = base64.b64encode(_statement_payload().replace(DIGEST.encode(), b"ef" * 32)).decode()
    with pytest.raises(VerificationError):
        Envelope.from_dict(data).verify([_sslib_key(signer)], 1)
    with pytest.raises(VerificationError):
        Envelope.from_dict(sign_envelope(_statement_payload(), signer)).verify([_sslib_key(AttestationSigner.generate())], 1)


def test_we_open_what_securesystemslib_signs():
    private_key = Ed25519PrivateKey.generate()
    public_pem = AttestationSigner(private_key).public_pem
    sslib_signer = CryptoSigner(private_key, SSlibKey.from_crypto(private_key.public_key()))
    envelope = Envelope(_statement_payload(), PAYLOAD_TYPE, {})
    envelope.sign(sslib_signer)
    data = json.loads(json.dumps(envelope.to_dict()))
    # Its default keyid is not ours (it hashes its own JSON key form), so ours tries none of
    # them by keyid; without a keyid the signature is tried, as DSSE says.
    with pytest.raises(AttestationInvalid, match="no signature by the attestation key"):
        open_envelope(data, public_pem)
    del data["signatures"][0]["keyid"]
    payload = open_envelope(data, public_pem)
    assert parse_statement(payload)["subject"][0]["digest"]["sha256"] == DIGEST


def test_we_open_what_securesystemslib_signs_under_our_keyid():
    private_key = Ed25519PrivateKey.generate()
    ours = AttestationSigner(private_key)
    sslib_signer = CryptoSigner(private_key, SSlibKey.from_crypto(private_key.public_key(), keyid=ours.keyid))
    envelope = Envelope(_statement_payload(), PAYLOAD_TYPE, {})
    envelope.sign(sslib_signer)
    assert open_envelope(envelope.to_dict(), ours.public_pem) == _statement_payload()

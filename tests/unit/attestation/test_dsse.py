"""DSSE v1: the PAE bytes, round trips, and the ways an envelope can be tampered with or
malformed. Each failure must say what failed."""

from __future__ import annotations

import base64
import copy

import pytest

from privet.governance.attestation.dsse import (
    MAX_ENVELOPE_BYTES,
    MAX_SIGNATURES,
    PAYLOAD_TYPE,
    AttestationInvalid,
    open_envelope,
    pae,
    sign_envelope,
)
from privet.governance.attestation.keys import AttestationSigner

SIGNER = AttestationSigner.generate()
OTHER = AttestationSigner.generate()
PAYLOAD = b'{"hello":"world"}'


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- PAE -----------------------------------------------------------------------------------


def test_pae_vector_from_the_spec_by_hand():
    # "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body; the type is 29 bytes, the body 11.
    assert pae("http://example.com/HelloWorld", b"hello world") == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_pae_of_the_in_toto_type():
    assert len(PAYLOAD_TYPE) == 28
    assert pae(PAYLOAD_TYPE, b"{}") == b"DSSEv1 28 application/vnd.in-toto+json 2 {}"


def test_pae_lengths_count_bytes_not_characters():
    # "t\u00ffpe" is 4 characters but 5 UTF-8 bytes; the body holds a space and a newline.
    assert pae("t\u00ffpe", b"a b\n") == b"DSSEv1 5 t\xc3\xbfpe 4 a b\n"


def test_pae_of_empty_type_and_body():
    assert pae("", b"") == b"DSSEv1 0  0 "


# --- round trip ----------------------------------------------------------------------------


def test_sign_then_open_returns_the_payload():
    envelope = sign_envelope(PAYLOAD, SIGNER)
    assert set(envelope) == {"payload", "payloadType", "signatures"}
    assert envelope["payloadType"] == PAYLOAD_TYPE
    assert base64.b64decode(envelope["payload"]) == PAYLOAD
    assert envelope["signatures"][0]["keyid"] == SIGNER.keyid
    assert open_envelope(envelope, SIGNER.public_pem) == PAYLOAD
    assert open_envelope(envelope, SIGNER.public_pem.encode("ascii")) == PAYLOAD


def test_the_signature_is_over_the_pae():
    envelope = sign_envelope(PAYLOAD, SIGNER)
    sig = base64.b64decode(envelope["signatures"][0]["sig"])
    SIGNER.public_key.verify(sig, pae(PAYLOAD_TYPE, PAYLOAD))  # raises if not


def test_other_payload_types_round_trip():
    envelope = sign_envelope(b"x", SIGNER, payload_type="application/example")
    assert open_envelope(envelope, SIGNER.public_pem, payload_type="application/example") == b"x"


def test_signature_without_keyid_is_tried():
    envelope = sign_envelope(PAYLOAD, SIGNER)
    del envelope["signatures"][0]["keyid"]
    assert open_envelope(envelope, SIGNER.public_pem) == PAYLOAD
    envelope["signatures"][0]["keyid"] = ""  # DSSE: set-but-empty is the same as unset
    assert open_envelope(envelope, SIGNER.public_pem) == PAYLOAD


def test_one_good_signature_among_others_is_enough():
    envelope = sign_envelope(PAYLOAD, SIGNER)
    other = sign_envelope(PAYLOAD, OTHER)["signatures"][0]
    envelope["signatures"].insert(0, other)
    assert open_envelope(envelope, SIGNER.public_pem) == PAYLOAD
    assert open_envelope(envelope, OTHER.public_pem) == PAYLOAD


# --- tampering -----------------------------------------------------------------------------


def _fails(envelope: object, match: str, key: str = SIGNER.public_pem) -> None:
    with pytest.raises(AttestationInvalid, match=match):
        open_envelope(envelope, key)


def test_flipped_payload_byte_fails():
    envelope = sign_envelope(PAYLOAD, SIGNER)
    raw = bytearray(PAYLOAD)
    raw[3] ^= 0x01
    envelope["payload"] = _b64(bytes(raw))
    _fails(envelope, "signature does not verify with the attestation key")


def test_changed_payload_type_fails():
    envelope = sign_envelope(PAYLOAD, SIGNER)
    envelope["payloadType"] = "application/json"
    _fails(envelope, "payloadType is 'application/json', not 'application/vnd.in-toto\\+json'")
    # Nor does it verify when the verifier is told to expect the new type: the PAE covers it.
    with pytest.raises(AttestationInvalid, match="does not verify"):
        open_envelope(envelope, SIGNER.public_pem, payload_type="application/json")


def test_signature_by_another_key_fails():
    _fails(sign_envelope(PAYLOAD, OTHER), f"no signature by the attestation key {SIGNER.keyid}")


def test_signature_by_another_key_relabelled_with_our_keyid_fails():
    envelope = sign_envelope(PAYLOAD, OTHER)
    envelope["signatures"][0]["keyid"] = SIGNER.keyid
    _fails(envelope, "does not verify")


def test_flipped_signature_bit_fails():
    envelope = sign_envelope(PAYLOAD, SIGNER)
    sig = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    sig[10] ^= 0x80
    envelope["signatures"][0]["sig"] = _b64(bytes(sig))
    _fails(envelope, "does not verify")


def test_truncated_signature_fails():
    envelope = sign_envelope(PAYLOAD, SIGNER)
    envelope["signatures"][0]["sig"] = _b64(base64.b64decode(envelope["signatures"][0]["sig"])[:63])
    _fails(envelope, "does not verify")


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda e: e.pop("payload"), "exactly the keys"),
        (lambda e: e.update(extra=1), "exactly the keys"),
        (lambda e: e.update(payload=5), "payload is not a string"),
        (lambda e: e.update(payloadType=None), "payloadType is not a string"),
        (lambda e: e.update(signatures={}), "signatures is not a list"),
        (lambda e: e.update(signatures=[]), "has no signatures"),
        (lambda e: e["signatures"].append("sig"), "signature 1 must be an object"),
        (lambda e: e["signatures"][0].pop("sig"), "signature 0 must be an object"),
        (lambda e: e["signatures"][0].update(cert="x"), "signature 0 must be an object"),
        (lambda e: e["signatures"][0].update(keyid=7), "signature 0 has a field that is not a string"),
        (lambda e: e.update(payload=e["payload"].rstrip("=")), "payload is not standard base64"),
        (lambda e: e.update(payload=e["payload"] + "\n"), "payload is not standard base64"),
        (lambda e: e.update(payload=e["payload"].replace("+", "-").replace("/", "_")), "payload is not standard base64"),
        (lambda e: e["signatures"][0].update(sig="@@@@"), "signature 0 is not standard base64"),
    ],
)
def test_malformed_envelopes_are_named(mutate, match):
    # The payload is chosen so that its base64 holds '+' or '/', and needs padding.
    envelope = sign_envelope(b"\xfb\xff\xfe{}", SIGNER)
    assert "=" in envelope["payload"] and ("+" in envelope["payload"] or "/" in envelope["payload"])
    mutate(envelope)
    _fails(envelope, match)


def test_non_canonical_base64_is_rejected():
    envelope = sign_envelope(b"ab", SIGNER)  # "YWI=": the last char's low bits must be zero
    assert envelope["payload"] == "YWI="
    envelope["payload"] = "YWJ="  # decodes to the same bytes under a lenient decoder
    _fails(envelope, "payload is not canonical base64")


@pytest.mark.parametrize("envelope", [None, "text", [], 3, b"{}"])
def test_non_objects_are_rejected(envelope):
    _fails(envelope, "not a JSON object")


def test_too_many_signatures_are_rejected_before_any_is_checked():
    envelope = sign_envelope(PAYLOAD, SIGNER)
    envelope["signatures"] = envelope["signatures"] * (MAX_SIGNATURES + 1)
    _fails(envelope, f"more than the {MAX_SIGNATURES} allowed")
    envelope["signatures"] = envelope["signatures"][:MAX_SIGNATURES]
    assert open_envelope(envelope, SIGNER.public_pem) == PAYLOAD


def test_oversized_envelope_is_rejected():
    envelope = sign_envelope(b"x" * (MAX_ENVELOPE_BYTES * 3 // 4 + 1), SIGNER)
    _fails(envelope, f"larger than {MAX_ENVELOPE_BYTES} bytes")


def test_envelope_just_under_the_limit_opens():
    payload = b"x" * (MAX_ENVELOPE_BYTES * 3 // 4 - 300)
    assert open_envelope(sign_envelope(payload, SIGNER), SIGNER.public_pem) == payload


def test_open_envelope_does_not_modify_its_input():
    envelope = sign_envelope(PAYLOAD, SIGNER)
    before = copy.deepcopy(envelope)
    open_envelope(envelope, SIGNER.public_pem)
    assert envelope == before


def test_malformed_key_raises_value_error_not_attestation_invalid():
    envelope = sign_envelope(PAYLOAD, SIGNER)
    with pytest.raises(ValueError, match="not a PEM"):
        open_envelope(envelope, "not a key")

"""The attestation key pair: its id, its PEM forms, and its files (created once, never
overwritten, private to the owner)."""

from __future__ import annotations

import hashlib
import os
import pickle
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from privet.governance.attestation.keys import (
    AttestationSigner,
    ensure_attestation_key,
    keyid_of,
    load_public_key,
    load_signer,
)


def _pkcs8(key, password: bytes | None = None) -> bytes:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def _spki_pem(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


# --- the signer ----------------------------------------------------------------------------


def test_keyid_is_sha256_of_the_spki_der():
    signer = AttestationSigner.generate()
    der = signer.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert len(der) == 44  # 12-byte Ed25519 SPKI header + 32-byte key
    assert signer.keyid == "sha256:" + hashlib.sha256(der).hexdigest()
    assert keyid_of(load_public_key(signer.public_pem)) == signer.keyid


def test_public_pem_is_spki():
    signer = AttestationSigner.generate()
    assert signer.public_pem.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert _spki_pem(signer.public_key).decode() == signer.public_pem


def test_from_pem_round_trips_and_signs_verifiably():
    key = ed25519.Ed25519PrivateKey.generate()
    signer = AttestationSigner.from_pem(_pkcs8(key))
    assert signer.public_pem == _spki_pem(key.public_key()).decode()
    key.public_key().verify(signer.sign(b"message"), b"message")
    assert AttestationSigner.from_pem(_pkcs8(key).decode()).keyid == signer.keyid  # str works too


def test_repr_and_str_never_show_the_key():
    key = ed25519.Ed25519PrivateKey.generate()
    signer = AttestationSigner.from_pem(_pkcs8(key))
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    for text in (repr(signer), str(signer), f"{signer}"):
        assert text == f"AttestationSigner(keyid={signer.keyid!r})"
        assert raw.hex() not in text and "PRIVATE" not in text
    assert not hasattr(signer, "__dict__")  # nothing but the slots, so vars() shows nothing


def test_signer_cannot_be_pickled():
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(AttestationSigner.generate())


def test_from_pem_rejects_other_keys():
    with pytest.raises(ValueError, match="is an elliptic-curve \\(ECDSA\\) key, not Ed25519"):
        AttestationSigner.from_pem(_pkcs8(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(ValueError, match="encrypted"):
        AttestationSigner.from_pem(_pkcs8(ed25519.Ed25519PrivateKey.generate(), b"secret"))
    with pytest.raises(ValueError, match="not a PKCS8 PEM"):
        AttestationSigner.from_pem(b"garbage")


# --- public keys ---------------------------------------------------------------------------


def test_load_public_key_accepts_str_and_bytes():
    signer = AttestationSigner.generate()
    assert keyid_of(load_public_key(signer.public_pem)) == signer.keyid
    assert keyid_of(load_public_key(signer.public_pem.encode())) == signer.keyid


@pytest.mark.parametrize(
    ("pem", "match"),
    [
        (b"", "not a PEM SubjectPublicKeyInfo"),
        ("hello", "not a PEM SubjectPublicKeyInfo"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a PEM SubjectPublicKeyInfo"),
        (_spki_pem(ec.generate_private_key(ec.SECP256R1()).public_key()), "is an elliptic-curve \\(ECDSA\\) key, not Ed25519"),
        (_pkcs8(ed25519.Ed25519PrivateKey.generate()), "is a private key; give the .pub file"),
        ("caf\u00e9", "non-ASCII"),
        (b"x" * 100_000, "too large"),
        (None, "must be PEM text"),
        (42, "must be PEM text"),
    ],
)
def test_load_public_key_rejects_anything_else_with_a_clear_message(pem, match):
    with pytest.raises(ValueError, match=match):
        load_public_key(pem)


# --- key files -----------------------------------------------------------------------------


def test_ensure_creates_a_private_key_and_its_public_half(tmp_path):
    keys = tmp_path / "keys"
    key_path, pub_path = ensure_attestation_key(keys)
    assert (key_path, pub_path) == (keys / "attestation.key", keys / "attestation.pub")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS8, unencrypted
    signer = load_signer(keys)
    assert pub_path.read_text() == signer.public_pem
    assert not [p.name for p in keys.iterdir() if p.name not in {"attestation.key", "attestation.pub"}]  # no temp left


def test_ensure_is_idempotent_and_never_overwrites(tmp_path):
    key_path, pub_path = ensure_attestation_key(tmp_path)
    key_bytes, pub_bytes, inode = key_path.read_bytes(), pub_path.read_bytes(), key_path.stat().st_ino
    for _ in range(3):
        assert ensure_attestation_key(tmp_path) == (key_path, pub_path)
    assert key_path.read_bytes() == key_bytes and pub_path.read_bytes() == pub_bytes
    assert key_path.stat().st_ino == inode


def test_ensure_keeps_a_key_it_did_not_make(tmp_path):
    mine = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "attestation.key").write_bytes(_pkcs8(mine))
    _, pub_path = ensure_attestation_key(tmp_path)
    assert (tmp_path / "attestation.key").read_bytes() == _pkcs8(mine)
    assert pub_path.read_bytes() == _spki_pem(mine.public_key())


def test_ensure_rewrites_a_missing_public_key_from_the_private_key(tmp_path):
    key_path, pub_path = ensure_attestation_key(tmp_path)
    expected = pub_path.read_bytes()
    pub_path.unlink()
    ensure_attestation_key(tmp_path)
    assert pub_path.read_bytes() == expected
    assert key_path.exists()


def test_ensure_refuses_a_public_key_that_does_not_match(tmp_path):
    key_path, pub_path = ensure_attestation_key(tmp_path)
    key_bytes = key_path.read_bytes()
    pub_path.write_text(AttestationSigner.generate().public_pem)
    with pytest.raises(ValueError, match="does not match"):
        ensure_attestation_key(tmp_path)
    assert key_path.read_bytes() == key_bytes  # still never touched


def test_ensure_key_is_private_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        key_path, _ = ensure_attestation_key(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_load_signer_without_a_key_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_signer(tmp_path)

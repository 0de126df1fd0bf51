"""The registry's attestation key: an Ed25519 key pair kept as PEM files in the home's keys/.

The private key never leaves `AttestationSigner` except to be written to its own file
(PKCS8, mode 0600). Everything a verifier needs is the public half, published as a
SubjectPublicKeyInfo PEM (``keys/attestation.pub``) that any tool can read.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
from typing import NoReturn

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from privet.governance.fsutil import write_atomic

__all__ = [
    "KEY_FILE",
    "PUB_FILE",
    "AttestationSigner",
    "ensure_attestation_key",
    "keyid_of",
    "load_public_key",
    "load_signer",
]

KEY_FILE = "attestation.key"
PUB_FILE = "attestation.pub"

# A PEM public key is a few hundred bytes; refusing anything far larger keeps a hostile
# "key" argument from costing more than a glance.
_MAX_PEM_BYTES = 16 * 1024


def _spki_der(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def keyid_of(public_key: Ed25519PublicKey) -> str:
    """``sha256:<hex>`` of the key's SubjectPublicKeyInfo DER.

    Hashing the standard DER form (not a tool-specific JSON encoding) lets anyone holding
    the .pub file recompute the id with stock tools (`openssl pkey -pubin -outform DER`)."""
    return "sha256:" + hashlib.sha256(_spki_der(public_key)).hexdigest()


def _public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


_KINDS = (
    ((rsa.RSAPublicKey, rsa.RSAPrivateKey), "an RSA key"),
    ((ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey), "an elliptic-curve (ECDSA) key"),
    ((ed448.Ed448PublicKey, ed448.Ed448PrivateKey), "an Ed448 key"),
    ((x25519.X25519PublicKey, x25519.X25519PrivateKey), "an X25519 key"),
    ((x448.X448PublicKey, x448.X448PrivateKey), "an X448 key"),
)


def _kind(key: object) -> str:
    """What a key is, in the words an operator would use."""
    for classes, words in _KINDS:
        if isinstance(key, classes):
            return words
    return f"a {type(key).__name__}"


def _as_bytes(pem: str | bytes, what: str) -> bytes:
    if isinstance(pem, str):
        try:
            return pem.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError(f"{what} is not a PEM text (non-ASCII characters)") from None
    if isinstance(pem, (bytes, bytearray, memoryview)):
        return bytes(pem)
    raise ValueError(f"{what} must be PEM text (str or bytes), not {type(pem).__name__}")


class AttestationSigner:
    """Signs with the attestation key. Its repr names the key id, never the key."""

    __slots__ = ("_private_key", "keyid", "public_pem")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise TypeError("the attestation key must be an Ed25519 private key")
        self._private_key = private_key
        self.keyid = keyid_of(private_key.public_key())
        self.public_pem = _public_pem(private_key.public_key())

    @classmethod
    def generate(cls) -> AttestationSigner:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes) -> AttestationSigner:
        """Load an unencrypted PKCS8 PEM private key; ValueError if it is anything else."""
        data = _as_bytes(pem, "attestation private key")
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except TypeError:
            # cryptography raises TypeError for an encrypted key given no password.
            raise ValueError("the attestation private key is encrypted; Privet expects an unencrypted PKCS8 PEM") from None
        except (ValueError, UnsupportedAlgorithm):
            raise ValueError("the attestation private key is not a PKCS8 PEM private key") from None
        if isinstance(key, Ed25519PrivateKey):
            return cls(key)
        # ValueError, not TypeError: a key file of the wrong kind is bad input, not a bug.
        raise ValueError(f"the attestation private key is {_kind(key)}, not Ed25519")

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._private_key.public_key()

    def sign(self, message: bytes) -> bytes:
        return self._private_key.sign(bytes(message))

    def _private_pem(self) -> bytes:
        # Module-private on purpose: only ensure_attestation_key writes the key out.
        return self._private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def __repr__(self) -> str:
        return f"AttestationSigner(keyid={self.keyid!r})"

    def __reduce__(self) -> NoReturn:
        # Pickling would copy the private key into whatever stores the pickle.
        raise TypeError("AttestationSigner cannot be pickled; load it from its key file instead")


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    """Parse an Ed25519 SubjectPublicKeyInfo PEM; ValueError with a plain reason otherwise."""
    data = _as_bytes(pem, "attestation public key")
    if len(data) > _MAX_PEM_BYTES:
        raise ValueError("attestation public key is too large to be an Ed25519 PEM public key")
    if b"PRIVATE KEY" in data:
        # Say so plainly: handing a verifier the private key is a mistake worth naming.
        raise ValueError("attestation public key is a private key; give the .pub file instead")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("attestation public key is not a PEM SubjectPublicKeyInfo public key") from None
    if isinstance(key, Ed25519PublicKey):
        return key
    raise ValueError(f"attestation public key is {_kind(key)}, not Ed25519")


def load_signer(keys_dir: pathlib.Path) -> AttestationSigner:
    """The signer in ``keys_dir/attestation.key`` (FileNotFoundError when there is none)."""
    return AttestationSigner.from_pem((pathlib.Path(keys_dir) / KEY_FILE).read_bytes())


def ensure_attestation_key(keys_dir: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """Create ``keys_dir/attestation.key`` (PKCS8 PEM, mode 0600) and ``attestation.pub``
    (SPKI PEM) if missing; return (key_path, pub_path).

    Never replaces an existing key: every attestation ever issued names it, so losing it to
    a re-run would orphan them all. The key is written under a temporary name, fsynced, then
    linked into place only if nothing is there yet (governance.fsutil.write_atomic), so a
    crash or a concurrent caller leaves one whole key, not two or a torn one. The .pub is
    derived data and is rewritten from the key when missing. A .pub that exists but does
    not match the key raises ValueError: one of the two files was changed, and guessing
    which one to trust is an operator's call.
    """
    keys_dir = pathlib.Path(keys_dir)
    keys_dir.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = keys_dir / KEY_FILE, keys_dir / PUB_FILE
    if not key_path.exists():
        fresh = AttestationSigner.generate()
        if write_atomic(key_path, fresh._private_pem(), mode=0o600, overwrite=False):
            # The temporary file's mode is masked by the umask and may predate us; make
            # sure the key itself is owner-only.
            os.chmod(key_path, 0o600)
    # Whoever won a race, the key on disk is the key.
    signer = load_signer(keys_dir)
    if not pub_path.exists():
        write_atomic(pub_path, signer.public_pem.encode("ascii"), overwrite=False)
    try:
        on_disk = load_public_key(pub_path.read_bytes())
    except ValueError as exc:
        raise ValueError(f"{pub_path} is unreadable ({exc}); remove it to have it rewritten from {key_path.name}") from None
    if keyid_of(on_disk) != signer.keyid:
        raise ValueError(f"{pub_path} does not match {key_path}: one of them was replaced; remove the .pub to rewrite it from the key")
    return key_path, pub_path

"""Signed tree heads: C2SP tlog-checkpoint bodies in C2SP signed notes, Ed25519 only.

Wire formats (byte-compatible with golang.org/x/mod/sumdb/note and documented in
docs/audit-format.md):

- body: ``<origin>\\n<tree size, decimal>\\n<base64 root hash>\\n``
- note: body, a blank line, then ``— <key name> <base64(key id || signature)>\\n`` lines
- signer key: ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || 32-byte seed)>``
- verifier key: ``<name>+<hex key id>+<base64(0x01 || 32-byte public key)>``
- key id: the first 4 bytes, big-endian, of SHA-256(name || 0x0A || 0x01 || public key)

Anything malformed raises ValueError; a note that does not carry a valid signature by the
expected key raises DataLoss, because for an auditor that is an integrity failure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from privet.governance.audit.hashing import HASH_SIZE
from privet.governance.errors import DataLoss

__all__ = [
    "Checkpoint",
    "NoteSigner",
    "NoteVerifier",
    "generate_signer",
    "open_checkpoint",
    "open_note",
    "peek_checkpoint",
    "sign_checkpoint",
    "sign_note",
]

_ALG_ED25519 = 0x01
_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_SIGNER_PREFIX = "PRIVATE+KEY+"
# Bounds the work an untrusted note can cause; the spec asks verifiers to accept 16.
_MAX_SIGNATURES = 100
_DECIMAL = re.compile(r"(0|[1-9][0-9]*)")
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")


def _b64decode_strict(text: str, what: str) -> bytes:
    """Standard base64 with padding; rejects other alphabets and non-canonical trailing bits
    so that each value has exactly one text form."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError(f"{what}: not standard base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError(f"{what}: not canonical base64")
    return raw


def _check_key_name(name: str) -> None:
    if not name or "+" in name or any(ch.isspace() or ord(ch) < 0x20 for ch in name):
        raise ValueError("key name must be non-empty, without spaces, '+' or control characters")


def _key_id(name: str, public_key: bytes) -> int:
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([_ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _parse_key_id(text: str) -> int:
    if not _KEY_ID_HEX.fullmatch(text):
        raise ValueError("key id must be 8 lowercase hex digits")
    return int(text, 16)


def _parse_typed_key(text: str, what: str) -> bytes:
    raw = _b64decode_strict(text, what)
    if len(raw) != 33 or raw[0] != _ALG_ED25519:
        raise ValueError(f"{what}: expected 0x01 followed by a 32-byte Ed25519 key")
    return raw[1:]


@dataclass(frozen=True)
class NoteVerifier:
    """A public key that checks note signatures. Build it with `from_text`."""

    name: str
    key_id: int
    public_key: bytes

    @classmethod
    def from_text(cls, text: str) -> NoteVerifier:
        """Parse ``<name>+<hex key id>+<base64(0x01 || public key)>``.

        Raises ValueError when malformed or when the key id does not match the key.
        """
        # Only the base64 part may contain '+': names and key ids never do.
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise ValueError("verifier key must be <name>+<hex key id>+<base64 key>")
        name, id_hex, key_b64 = parts
        _check_key_name(name)
        key_id = _parse_key_id(id_hex)
        public_key = _parse_typed_key(key_b64, "verifier key")
        if _key_id(name, public_key) != key_id:
            raise ValueError("verifier key id does not match its name and key")
        return cls(name, key_id, public_key)

    @property
    def text(self) -> str:
        """The verifier key in note format."""
        blob = base64.b64encode(bytes([_ALG_ED25519]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id:08x}+{blob}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when `signature` is this key's Ed25519 signature over `message`."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


class NoteSigner:
    """A private Ed25519 key that signs notes. Build it with `from_text`."""

    def __init__(self, name: str, seed: bytes) -> None:
        """Requires a valid key name and a 32-byte seed; raises ValueError otherwise."""
        _check_key_name(name)
        if len(seed) != 32:
            raise ValueError("Ed25519 seed must be 32 bytes")
        self._private_key = Ed25519PrivateKey.from_private_bytes(seed)
        self._seed = bytes(seed)
        public_key = self._private_key.public_key().public_bytes_raw()
        self.name = name
        self.key_id = _key_id(name, public_key)
        self.verifier = NoteVerifier(name, self.key_id, public_key)

    @classmethod
    def from_text(cls, text: str) -> NoteSigner:
        """Parse ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>``.

        Raises ValueError when malformed or when the key id does not match the key.
        """
        text = text.strip()
        if not text.startswith(_SIGNER_PREFIX):
            raise ValueError("signer key must start with PRIVATE+KEY+")
        parts = text[len(_SIGNER_PREFIX):].split("+", 2)
        if len(parts) != 3:
            raise ValueError("signer key must be PRIVATE+KEY+<name>+<hex key id>+<base64 seed>")
        name, id_hex, seed_b64 = parts
        key_id = _parse_key_id(id_hex)
        signer = cls(name, _parse_typed_key(seed_b64, "signer key"))
        if signer.key_id != key_id:
            raise ValueError("signer key id does not match its name and key")
        return signer

    @property
    def text(self) -> str:
        """The signer key in note format. Secret: store it like a private key."""
        blob = base64.b64encode(bytes([_ALG_ED25519]) + self._seed).decode("ascii")
        return f"{_SIGNER_PREFIX}{self.name}+{self.key_id:08x}+{blob}"

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature over `message` (deterministic)."""
        return self._private_key.sign(message)

    def __repr__(self) -> str:  # never print the seed
        return f"NoteSigner(name={self.name!r}, key_id={self.key_id:08x})"


def generate_signer(name: str) -> tuple[str, str]:
    """A fresh key pair as (signer key text, verifier key text). Raises ValueError on a bad name."""
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    signer = NoteSigner(name, seed)
    return signer.text, signer.verifier.text


def _check_note_text(text: str) -> None:
    if not text.endswith("\n"):
        raise ValueError("note text must end with a newline")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        raise ValueError("note text must not contain control characters other than newline")


def sign_note(text: str, signer: NoteSigner) -> str:
    """`text` followed by a blank line and `signer`'s signature line.

    Requires text ending in a newline, without other control characters and without a
    blank line at the end (it would be mistaken for the separator); raises ValueError.
    """
    _check_note_text(text)
    if text.endswith("\n\n") or text == "\n":
        raise ValueError("note text must not end with a blank line")
    signature = signer.sign(text.encode("utf-8"))
    blob = base64.b64encode(signer.key_id.to_bytes(4, "big") + signature).decode("ascii")
    return f"{text}\n{_SIGNATURE_PREFIX}{signer.name} {blob}\n"


def open_note(note: str | bytes, verifier: NoteVerifier) -> str:
    """Verify a signed note and return its text (with final newline, without the blank line).

    Signatures by other keys are ignored, as the spec requires; the note must carry at
    least one signature by `verifier` and every such signature must verify.
    Raises ValueError when the note is malformed and DataLoss when it is not validly
    signed by `verifier`.
    """
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError("note is not valid UTF-8") from exc
    _check_note_text(note)
    # The text ends at the last blank line; signatures follow it.
    split = note.rfind("\n\n")
    if split < 0:
        raise ValueError("note has no blank line before its signatures")
    text, signature_block = note[: split + 1], note[split + 2 :]
    lines = signature_block.split("\n")[:-1]  # the block ends with "\n"
    if not lines:
        raise ValueError("note has no signature lines")
    if len(lines) > _MAX_SIGNATURES:
        raise ValueError(f"note has more than {_MAX_SIGNATURES} signatures")
    message = text.encode("utf-8")
    verified = False
    for line in lines:
        if not line.startswith(_SIGNATURE_PREFIX):
            raise ValueError("signature line must start with an em dash and a space")
        name, sep, blob_b64 = line[len(_SIGNATURE_PREFIX):].partition(" ")
        if not sep:
            raise ValueError("signature line must be '— <name> <base64>'")
        _check_key_name(name)
        blob = _b64decode_strict(blob_b64, "signature")
        if len(blob) < 5:
            raise ValueError("signature is shorter than a key id and one byte")
        key_id = int.from_bytes(blob[:4], "big")
        if name != verifier.name or key_id != verifier.key_id:
            continue  # someone else's signature (a witness, a rotated key): not ours to judge
        if not verifier.verify(message, blob[4:]):
            raise DataLoss(f"note signature by {verifier.name} does not verify")
        verified = True
    if not verified:
        raise DataLoss(f"note is not signed by {verifier.name}+{verifier.key_id:08x}")
    return text


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the log `origin`, its `size` in leaves, and the RFC 9162 `root_hash`.

    Requires a non-empty origin without control characters, a non-negative int size and a
    32-byte root hash; raises ValueError otherwise.
    """

    origin: str
    size: int
    root_hash: bytes

    def __post_init__(self) -> None:
        if not self.origin or any(ord(ch) < 0x20 for ch in self.origin):
            raise ValueError("checkpoint origin must be non-empty, without control characters")
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise ValueError("checkpoint size must be a non-negative int")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise ValueError(f"checkpoint root hash must be {HASH_SIZE} bytes")

    def format_body(self) -> str:
        """The tlog-checkpoint note text: origin, size, base64 root, each ending in newline."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root_hash).decode('ascii')}\n"

    @classmethod
    def parse_body(cls, text: str) -> Checkpoint:
        """Inverse of `format_body`. Privet emits no extension lines and accepts none, so each
        checkpoint has one text form. Raises ValueError when malformed."""
        lines = text.split("\n")
        if len(lines) != 4 or lines[3] != "":
            raise ValueError("checkpoint body must be exactly origin, size and root hash lines")
        origin, size_text, root_b64 = lines[:3]
        if not _DECIMAL.fullmatch(size_text):
            raise ValueError("checkpoint size must be decimal without leading zeros")
        return cls(origin, int(size_text), _b64decode_strict(root_b64, "checkpoint root hash"))


def sign_checkpoint(cp: Checkpoint, signer: NoteSigner) -> str:
    """The full signed note for `cp`."""
    return sign_note(cp.format_body(), signer)


def open_checkpoint(note_text: str | bytes, verifier: NoteVerifier) -> Checkpoint:
    """Verify a checkpoint note's signature, then parse its body.

    Raises DataLoss when it is not validly signed by `verifier`, ValueError when malformed.
    """
    return Checkpoint.parse_body(open_note(note_text, verifier))


def peek_checkpoint(note_text: str) -> Checkpoint:
    """Parse a checkpoint note WITHOUT checking any signature: only for a note the caller
    produced itself (e.g. to learn the size to build proofs for). Raises ValueError."""
    _check_note_text(note_text)
    split = note_text.rfind("\n\n")
    if split < 0:
        raise ValueError("note has no blank line before its signatures")
    return Checkpoint.parse_body(note_text[: split + 1])

"""The secrets masking needs, and how both derive from one stored secret."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from privet.governance.errors import InvalidArgument

__all__ = ["MaskingKeys"]


@dataclass(frozen=True, repr=False)
class MaskingKeys:
    """The secrets masking needs. The caller owns them (the keyring; one set per dataset,
    or per pseudonymisation domain so hashes and tokens agree across datasets).

    `hash_key` (≥ 16 bytes): HMAC-SHA256 for `hash` and for `scan` pseudonyms.
    `token_key` (16, 24 or 32 bytes): the AES key of FF1 for `tokenise`.
    `key_id`: which key version this is; recorded in the report, never the key itself.
    Raises InvalidArgument for a key of the wrong size."""

    hash_key: bytes | None = None
    token_key: bytes | None = None
    key_id: str = ""

    def __post_init__(self) -> None:
        if self.hash_key is not None and (not isinstance(self.hash_key, bytes) or len(self.hash_key) < 16):
            raise InvalidArgument("keys.hash_key", "must be at least 16 bytes")
        if self.token_key is not None and (not isinstance(self.token_key, bytes) or len(self.token_key) not in (16, 24, 32)):
            raise InvalidArgument("keys.token_key", "must be an AES key of 16, 24 or 32 bytes")

    def __repr__(self) -> str:
        return f"MaskingKeys(key_id={self.key_id!r})"

    @classmethod
    def derive(cls, secret: bytes, key_id: str = "") -> MaskingKeys:
        """Both keys from one stored secret (≥ 32 bytes), by HKDF-SHA256 with distinct labels."""
        if not isinstance(secret, bytes) or len(secret) < 32:
            raise InvalidArgument("keys", "the secret must be at least 32 bytes")

        def hkdf(label: bytes) -> bytes:
            return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(secret)

        return cls(hkdf(b"privet/masking/hmac/v1"), hkdf(b"privet/masking/ff1/v1"), key_id)

"""Keyed pseudonyms for entities found in free text: the same entity, however it is
written, always gets the same token under the same key (`<EMAIL_3fa94c0e1b2d7a55>`)."""

from __future__ import annotations

import ipaddress
import re

from cryptography.hazmat.primitives import hashes, hmac

from privet.governance.errors import InvalidArgument
from privet.governance.masking.entities import PiiType

__all__ = ["PSEUDONYM_HEX", "Pseudonyms", "normal_form"]

PSEUDONYM_HEX = 16  # hex digits of the HMAC a pseudonym shows


class Pseudonyms:
    """The same entity always gets the same token: `<EMAIL_3fa94c0e1b2d7a55>`, an HMAC of
    the type and a normal form of the value under the caller's key.

    Raises InvalidArgument for a missing key or one shorter than 16 bytes."""

    def __init__(self, key: bytes | None) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) < 16:
            raise InvalidArgument("key", "a pseudonym key of at least 16 bytes is required")
        self._mac = hmac.HMAC(bytes(key), hashes.SHA256())
        self._cache: dict[tuple[PiiType, str], str] = {}

    def token(self, pii_type: PiiType, value: str) -> str:
        norm = normal_form(pii_type, value)
        got = self._cache.get((pii_type, norm))
        if got is None:
            mac = self._mac.copy()
            mac.update(f"scan\x00{pii_type.value}\x00{norm}".encode())
            got = f"<{pii_type.value}_{mac.finalize().hex()[:PSEUDONYM_HEX]}>"
            self._cache[(pii_type, norm)] = got
        return got


def normal_form(pii_type: PiiType, value: str) -> str:
    """The form of `value` its pseudonym is computed from: one entity, one pseudonym."""
    if pii_type is PiiType.MAC_ADDRESS:  # one address, one pseudonym, however it is written
        hex_digits = re.sub(r"[^0-9a-f]", "", value.lower())
        return ":".join(hex_digits[i:i + 2] for i in range(0, len(hex_digits), 2))
    if pii_type in (PiiType.EMAIL, PiiType.URL):
        return value.strip().lower()
    if pii_type is PiiType.IP_ADDRESS:
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            return value.strip().lower()
    if pii_type is PiiType.PHONE:
        digits = "".join(ch for ch in value if ch.isdigit())
        return ("+" if value.lstrip().startswith("+") else "") + digits
    if pii_type is PiiType.DATE:
        return value.strip()
    return "".join(ch for ch in value if ch.isalnum()).upper()

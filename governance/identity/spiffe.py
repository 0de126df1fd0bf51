"""SPIFFE ids of Privet principals: spiffe://privet.local/user/<name>, .../service/<name>."""

from __future__ import annotations

import re
from dataclasses import dataclass

from privet.governance.errors import InvalidArgument, Unauthenticated

__all__ = ["TRUST_DOMAIN", "SpiffeId", "check_name", "is_name", "parse_spiffe_id"]

TRUST_DOMAIN = "privet.local"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_KINDS = ("user", "service")


@dataclass(frozen=True)
class SpiffeId:
    kind: str  # "user" | "service"
    name: str

    @property
    def uri(self) -> str:
        return f"spiffe://{TRUST_DOMAIN}/{self.kind}/{self.name}"

    @property
    def principal(self) -> str:
        """The principal's display id used in the audit log: `user/alice`, `service/training`."""
        return f"{self.kind}/{self.name}"


def is_name(text: str) -> bool:
    """Whether `text` is a valid name (a principal's, a dataset's, a model's, an alias)."""
    return bool(_NAME.fullmatch(text))


def check_name(name: str, field: str = "name") -> str:
    if not _NAME.fullmatch(name):
        raise InvalidArgument(field, f"{name!r} is not a valid name (lower-case letter, then letters, digits, '-', '_'; at most 63)")
    return name


def parse_spiffe_id(uri: str) -> SpiffeId:
    """Parse a SPIFFE URI of Privet's trust domain. Anything else is Unauthenticated."""
    prefix = f"spiffe://{TRUST_DOMAIN}/"
    if not uri.startswith(prefix):
        raise Unauthenticated(f"SPIFFE id {uri!r} is not in trust domain {TRUST_DOMAIN}")
    parts = uri[len(prefix):].split("/")
    if len(parts) != 2 or parts[0] not in _KINDS or not _NAME.fullmatch(parts[1]):
        raise Unauthenticated(f"SPIFFE id {uri!r} does not name a Privet user or service")
    return SpiffeId(parts[0], parts[1])

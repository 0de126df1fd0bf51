"""Canonical, versioned leaf bytes of an audit event (documented in docs/audit-format.md).

Version 1: the ASCII prefix ``privet.audit.v1\\n`` followed by the event as JSON with keys
sorted, no insignificant white space, non-ASCII escaped (so the bytes do not depend on a
Unicode normalisation choice), integers only (no floats: their text form is not canonical).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _json_string  # C; what the encoders below emit for a str
from typing import Any

__all__ = ["LEAF_PREFIX", "EventRecord", "encode_leaf", "encode_leaf_fast", "canonical_json", "decode_leaf"]

LEAF_PREFIX = b"privet.audit.v1\n"


@dataclass(frozen=True)
class EventRecord:
    """What an audit event says. `time_us` is microseconds since the Unix epoch, UTC."""

    seq: int
    time_us: int
    principal: str
    action: str
    resource: str
    decision: str  # "allow" | "deny" | "info"
    policy_ids: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time_us": self.time_us,
            "principal": self.principal,
            "action": self.action,
            "resource": self.resource,
            "decision": self.decision,
            "policy_ids": list(self.policy_ids),
            "details": self.details,
        }


def _reject_floats(value: Any, path: str = "details") -> None:
    if isinstance(value, float):
        raise ValueError(f"{path}: floats are not canonical; store them as strings")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{path}: keys must be strings")
            _reject_floats(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _reject_floats(v, f"{path}[{i}]")


def encode_leaf(event: EventRecord) -> bytes:
    """The exact bytes that are hashed into the Merkle log. Deterministic for equal events."""
    _reject_floats(event.details)
    body = json.dumps(event.as_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return LEAF_PREFIX + body.encode("ascii")


_dumps_sorted = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), sort_keys=True).encode


def canonical_json(value: Any) -> str:
    """Canonical JSON of a details object (the same rules as the leaf)."""
    return _dumps_sorted(value)


def encode_leaf_fast(seq: int, time_us: int, principal: str, action: str, resource: str, decision: str, policy_ids: tuple[str, ...], details_json: str) -> bytes:
    """`encode_leaf` for the append hot path, from the details already in canonical JSON and
    free of floats (the caller guarantees both). Keys in sorted order, written out: equal to
    `encode_leaf` byte for byte (tests/unit/audit/test_leaf_fast.py checks it)."""
    ids = ",".join([_json_string(p) for p in policy_ids])
    body = (
        f'{{"action":{_json_string(action)},"decision":{_json_string(decision)},"details":{details_json},'
        f'"policy_ids":[{ids}],"principal":{_json_string(principal)},"resource":{_json_string(resource)},'
        f'"seq":{int(seq)},"time_us":{int(time_us)}}}'
    )
    return LEAF_PREFIX + body.encode("ascii")


def decode_leaf(data: bytes) -> EventRecord:
    """Parse leaf bytes back into an event. Raises ValueError on a foreign or non-canonical leaf."""
    if not data.startswith(LEAF_PREFIX):
        raise ValueError("leaf does not start with the privet.audit.v1 prefix")
    obj = json.loads(data[len(LEAF_PREFIX):].decode("ascii"))
    event = EventRecord(
        seq=obj["seq"],
        time_us=obj["time_us"],
        principal=obj["principal"],
        action=obj["action"],
        resource=obj["resource"],
        decision=obj["decision"],
        policy_ids=tuple(obj["policy_ids"]),
        details=obj["details"],
    )
    if encode_leaf(event) != data:
        raise ValueError("leaf is not in canonical form")
    return event

"""Canonical, versioned leaf bytes of an audit event (documented in docs/audit-format.md).

Version 1: the ASCII prefix ``privet.audit.v1\\n`` followed by the event in canonical JSON
(docs/audit-format.md §1.1): keys sorted by code point, no insignificant white space, every
character outside printable ASCII escaped (so the bytes do not depend on a Unicode
normalisation choice), integers only (no floats: their text form is not canonical), and no
surrogate code points (a lone surrogate is not a character; JSON parsers disagree on it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from json.encoder import (
    encode_basestring_ascii as _json_string,  # C; what the encoders below emit for a str
)
from typing import Any

from privet.governance.errors import InvalidArgument
from privet.governance.jsonlimits import check_json_depth, object_without_duplicates

__all__ = [
    "LEAF_PREFIX",
    "EventRecord",
    "canonical_json",
    "canonical_json_fast",
    "decode_leaf",
    "encode_leaf",
    "encode_leaf_fast",
    "find_surrogate",
    "may_hold_surrogate",
]

LEAF_PREFIX = b"privet.audit.v1\n"
_EVENT_KEYS = frozenset({"seq", "time_us", "principal", "action", "resource", "decision", "policy_ids", "details"})


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


def _has_surrogate(text: str) -> bool:
    # UTF-8 cannot encode a surrogate code point: the C codec finds one at memory speed.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def find_surrogate(value: Any, path: str) -> str | None:
    """The path (``path``, ``path.key``, ``path[3]``) of the first string in `value` (keys
    included) that holds a surrogate code point U+D800..U+DFFF, or None. In a Python str
    (as in JSON decoded by `json.loads`, which joins escaped pairs) such a code point is a
    lone surrogate: not a character, so canonical JSON refuses it."""
    if isinstance(value, str):
        return path if _has_surrogate(value) else None
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and _has_surrogate(k):
                return f"{path} (a key)"
            found = find_surrogate(v, f"{path}.{k}")
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = find_surrogate(v, f"{path}[{i}]")
            if found:
                return found
    return None


def may_hold_surrogate(encoded: bytes | str) -> bool:
    """False when canonical JSON text (or a leaf) certainly holds no surrogate: every one is
    written ``\\udXXX``. True does not mean it does (``\\ud7ff`` is Hangul): then ask
    `find_surrogate` of the values. A cheap test for the append path."""
    if isinstance(encoded, bytes):
        return b"\\ud" in encoded
    return "\\ud" in encoded


def _check_canonical_value(value: Any, path: str, *, surrogates: bool = True) -> None:
    """A value canonical JSON may hold: no float, string keys, and (unless `surrogates` is
    False, for re-encoding events written before that rule) no lone surrogate."""
    if value is None or isinstance(value, (bool, int)):
        return  # bool before int is irrelevant here: both are written exactly
    if isinstance(value, str):
        if surrogates and _has_surrogate(value):
            raise ValueError(f"{path}: holds a lone surrogate (U+D800..U+DFFF), which is not a character")
        return
    if isinstance(value, float):
        raise ValueError(f"{path}: floats are not canonical; store them as strings")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{path}: keys must be strings")
            if surrogates and _has_surrogate(k):
                raise ValueError(f"{path}: a key holds a lone surrogate (U+D800..U+DFFF), which is not a character")
            _check_canonical_value(v, f"{path}.{k}", surrogates=surrogates)
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_canonical_value(v, f"{path}[{i}]", surrogates=surrogates)
        return
    raise ValueError(f"{path}: {type(value).__name__} is not a JSON value")


def encode_leaf(event: EventRecord) -> bytes:
    """The exact bytes that are hashed into the Merkle log. Deterministic for equal events.

    Raises ValueError on a float in `details` (or a non-string key). It does not refuse a
    lone surrogate, so that the run-time integrity check still re-encodes an event written
    before that rule; the append path (`AuditLog.append`) and `decode_leaf` refuse it."""
    _check_canonical_value(event.details, "details", surrogates=False)
    body = json.dumps(event.as_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return LEAF_PREFIX + body.encode("ascii")


_dumps_sorted = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), sort_keys=True).encode


def canonical_json(value: Any) -> str:
    """Canonical JSON (docs/audit-format.md §1.1) of a value built from dict (string keys),
    list or tuple, str, int, bool and None. Pure ASCII.

    Raises ValueError on a float, a non-string key, any other type, or a string (or key)
    holding a lone surrogate."""
    _check_canonical_value(value, "value")
    return _dumps_sorted(value)


def canonical_json_fast(value: Any) -> str:
    """`canonical_json` for the append hot path, without its checks: the caller guarantees
    string keys and no floats (`governance.audit.log.canonical_details` does), and refuses
    surrogates on the encoded leaf (`may_hold_surrogate`, then `find_surrogate`)."""
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


def _no_float(text: str) -> Any:
    raise ValueError(f"number {text} is not an integer: floats are not canonical")


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def decode_leaf(data: bytes) -> EventRecord:
    """Parse leaf bytes back into an event. Raises ValueError on a foreign or non-canonical
    leaf: another prefix, bytes outside ASCII, a float, a duplicate key, a missing, extra or
    mistyped field, a lone surrogate in any string, or anything that does not re-encode to
    `data` byte for byte, or nesting deeper than MAX_JSON_DEPTH (checked before parsing)."""
    if not data.startswith(LEAF_PREFIX):
        raise ValueError("leaf does not start with the privet.audit.v1 prefix")
    try:
        check_json_depth(data[len(LEAF_PREFIX):], field="leaf")
    except InvalidArgument as exc:
        raise ValueError(exc.message) from None
    obj = json.loads(
        data[len(LEAF_PREFIX):].decode("ascii"),
        object_pairs_hook=object_without_duplicates,
        parse_float=_no_float,
        parse_constant=_no_constant,
    )
    if not isinstance(obj, dict) or set(obj) != _EVENT_KEYS:
        raise ValueError(f"leaf must be an object with exactly the keys {sorted(_EVENT_KEYS)}")
    if not (_is_int(obj["seq"]) and obj["seq"] >= 0 and _is_int(obj["time_us"])):
        raise ValueError("leaf seq and time_us must be integers (seq not negative)")
    if not all(isinstance(obj[k], str) for k in ("principal", "action", "resource", "decision")):
        raise ValueError("leaf principal, action, resource and decision must be strings")
    if not isinstance(obj["policy_ids"], list) or not all(isinstance(p, str) for p in obj["policy_ids"]):
        raise ValueError("leaf policy_ids must be a list of strings")
    if not isinstance(obj["details"], dict):
        raise ValueError("leaf details must be an object")
    if may_hold_surrogate(data):
        where = find_surrogate(obj, "leaf")
        if where:
            raise ValueError(f"{where} holds a lone surrogate (U+D800..U+DFFF), which is not a character")
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

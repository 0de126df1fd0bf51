"""The one JSON shape of each API object the CLI prints, and of an error (docs/cli.md).

Every command that prints a dataset, job, model, version, event, checkpoint, ... under
--json passes it through `to_json`, so the same object looks the same whichever command
printed it. The rules, once:

- every field is present; a message field the server did not set is `null`;
- enums are their value names without the enum's prefix (`SUCCEEDED`, not `JOB_STATE_SUCCEEDED`);
- integers are JSON numbers (protobuf's JSON mapping would quote 64-bit ones);
- timestamps are ISO 8601 UTC strings with microseconds (`2026-01-02T03:04:05.000006Z`),
  named without a unit: a `time_us` field is printed as `time`;
- a `*_json` field is printed parsed, without the suffix (`details_json` -> `details`);
- bytes are lowercase hex.

An error under --json is `{"error": {"code", "message", "field", "policy_ids"}}` (`error_object`).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

__all__ = ["error_object", "iso_time", "suppressed_columns", "to_json"]

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_TIMESTAMP = "google.protobuf.Timestamp"


def iso_time(micros: int) -> str | None:
    """Microseconds since the epoch as ISO 8601 UTC (`...Z`); None for 0 (never set)."""
    if not micros:
        return None
    return (_EPOCH + datetime.timedelta(microseconds=micros)).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _enum_name(field: Any, number: int) -> str | int:
    enum = field.enum_type
    assert enum is not None
    value = enum.values_by_number.get(number)
    if value is None:
        return number  # a value newer than this client: its number, not a guess
    prefix = enum.values_by_number[0].name.removesuffix("UNSPECIFIED") if 0 in enum.values_by_number else ""
    return value.name.removeprefix(prefix)


def _parsed(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # kept as it is: an edited log must still print (and `verify` names it)


def _single(field: Any, value: Any) -> Any:
    if field.message_type is not None:
        if field.message_type.full_name == _TIMESTAMP:
            return iso_time(value.seconds * 1_000_000 + value.nanos // 1000)
        return to_json(value)
    if field.enum_type is not None:
        return _enum_name(field, value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return bytes(value).hex()
    return value


def _is_map(field: Any) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _fields(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        name, value = field.name, getattr(message, field.name)
        if _is_map(field):
            value_field = field.message_type.fields_by_name["value"]  # type: ignore[union-attr]
            out[name] = {str(k): _single(value_field, value[k]) for k in sorted(value)}
        elif field.is_repeated:
            out[name] = [_single(field, v) for v in value]
        elif field.message_type is not None and not message.HasField(name):
            out[name] = None
        elif name.endswith("_json") and field.type == FieldDescriptor.TYPE_STRING:
            out[name.removesuffix("_json")] = _parsed(value)
            continue
        elif name == "time_us":
            out["time"] = iso_time(value)
            continue
        else:
            out[name] = _single(field, value)
    return out


def suppressed_columns(generalisation: dict[str, str]) -> list[str]:
    """Quasi-identifiers that k-anonymity generalised to the top of their hierarchy: every
    value became `*` (governance/masking/hierarchy.py), so the column carries nothing."""
    return sorted(name for name, level in generalisation.items() if level == "*")


def _report(out: dict[str, Any], _message: Message) -> dict[str, Any]:
    out["suppressed_columns"] = suppressed_columns(out["generalisation"])
    return out


def _event(out: dict[str, Any], _message: Message) -> dict[str, Any]:
    del out["leaf"]  # the exact leaf bytes are for `audit export` and offline verification
    return out


def _version(out: dict[str, Any], message: Message) -> dict[str, Any]:
    if not out["has_guarantee"]:
        out["guarantee"] = None  # a version without a guarantee has none, not one of zeros
    return out


# Per-object adjustments, by message full name; every other message takes the rules alone.
_ADJUST: dict[str, Callable[[dict[str, Any], Message], dict[str, Any]]] = {
    "privet.ingestion.v1.MaskingReport": _report,
    "privet.audit.v1.AuditEvent": _event,
    "privet.registry.v1.ModelVersion": _version,
}


def to_json(message: Message) -> dict[str, Any]:
    """The JSON shape of an API object (module docstring; docs/cli.md)."""
    out = _fields(message)
    adjust = _ADJUST.get(message.DESCRIPTOR.full_name)
    return adjust(out, message) if adjust else out


def _rpc_error(exc: grpc.RpcError) -> dict[str, Any]:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    code = exc.code() if callable(getattr(exc, "code", None)) else None
    out: dict[str, Any] = {"code": code.name if code else "UNKNOWN", "message": exc.details() if callable(getattr(exc, "details", None)) else str(exc)}
    try:
        status = rpc_status.from_call(exc) if isinstance(exc, grpc.Call) else None
    except ValueError:
        status = None  # details that disagree with the status: keep code and message
    for detail in status.details if status else ():
        bad, info = error_details_pb2.BadRequest(), error_details_pb2.ErrorInfo()
        if detail.Unpack(bad) and bad.field_violations:
            out["field"] = bad.field_violations[0].field
        elif detail.Unpack(info) and info.reason == "POLICY_DENIED":
            out["policy_ids"] = [p for p in info.metadata.get("policy_ids", "").split(",") if p]
    return out


def _usage_field(exc: Any) -> str | None:
    param = getattr(exc, "param", None)
    if param is None:
        return getattr(exc, "param_hint", None) if isinstance(getattr(exc, "param_hint", None), str) else None
    opts = getattr(param, "opts", None) or []
    if opts and getattr(param, "param_type_name", "") == "option":
        return str(max(opts, key=len))
    return str(param.name).upper()


def error_object(exc: BaseException) -> dict[str, Any]:
    """`{"error": {"code", "message", and "field" / "policy_ids" when known}}` for what a
    command raised: a gRPC status (with its google.rpc details), a Privet error, a usage
    error, or a local failure. `code` is a gRPC status code name."""
    import typer

    from privet.governance.errors import InvalidArgument, PermissionDenied, PrivetError
    from privet.governance.policy.engine import PolicyError

    out: dict[str, Any]
    if isinstance(exc, grpc.RpcError):
        out = _rpc_error(exc)
    elif isinstance(exc, PrivetError):
        from privet.services.common.errors import row_for

        code = row_for(exc).code
        out = {"code": code.name if isinstance(code, grpc.StatusCode) else "INTERNAL", "message": exc.message}
        if isinstance(exc, InvalidArgument):
            out["field"], out["message"] = exc.field, exc.description
        if isinstance(exc, PermissionDenied):
            out["policy_ids"] = list(exc.policy_ids)
    elif isinstance(exc, typer.BadParameter | typer.TyperException) and hasattr(exc, "format_message"):
        out = {"code": "INVALID_ARGUMENT", "message": exc.format_message()}
        field = _usage_field(exc)
        if field:
            out["field"] = field
    elif isinstance(exc, PolicyError):
        out = {"code": "FAILED_PRECONDITION", "message": str(exc)}
    elif isinstance(exc, FileNotFoundError):
        out = {"code": "NOT_FOUND", "message": str(exc)}
    elif isinstance(exc, PermissionError):
        out = {"code": "PERMISSION_DENIED", "message": str(exc)}
    elif isinstance(exc, ValueError):
        out = {"code": "INVALID_ARGUMENT", "message": str(exc) or type(exc).__name__}
    else:
        out = {"code": "UNKNOWN", "message": str(exc) or type(exc).__name__}
    return {"error": out}

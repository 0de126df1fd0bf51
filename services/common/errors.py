"""The one table from what a call raises to the gRPC status its caller sees.

Rows are tried in order; the first that matches decides. Privet's typed errors carry their
message to the caller (with google.rpc details for a bad field or a policy denial); a
database that cannot be reached is UNAVAILABLE, retryable, whoever noticed it first; a
client whose own stream failed keeps its status; anything else is INTERNAL with no detail,
logged here: internals never leak to callers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from privet.governance import errors as e

__all__ = ["ERROR_TABLE", "MAX_DETAIL_BYTES", "MAX_MESSAGE_BYTES", "Row", "abort_with", "bounded", "is_abort", "row_for", "status_for"]

log = logging.getLogger("privet.errors")

ERROR_DOMAIN = "privet.local"
# What a caller reads is bounded: messages quote the caller's own input (a name, a column),
# and gRPC refuses trailing metadata past its limit (8 KiB soft), which would lose the status
# itself. The limit counts bytes on the wire: the message travels percent-encoded (three
# characters per byte outside ASCII) and again, with the details, base64-encoded in
# grpc-status-details-bin, so a bound in characters is not one (1024 CJK characters in a
# message and a detail came to ~17 KiB). With these bounds the trailers stay under ~6 KiB.
MAX_MESSAGE_BYTES = 1024
MAX_DETAIL_BYTES = 512
_ELLIPSIS = "…"


def bounded(text: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """`text` as a caller may read it: at most `limit` bytes of UTF-8, cut on a character
    boundary, and control characters (which a message quoting the caller's input may carry:
    escapes, line breaks) escaped."""
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    room = limit - len(_ELLIPSIS.encode())
    return raw[:room].decode("utf-8", "ignore") + _ELLIPSIS


@dataclass(frozen=True)
class Row:
    """Exceptions of `catches` (for which `applies` holds) end the call with `code`; the
    caller reads `message(exc)` and the google.rpc `details(exc)`."""

    catches: type[BaseException] | tuple[type[BaseException], ...]
    code: grpc.StatusCode | Callable[[BaseException], grpc.StatusCode]
    message: Callable[[BaseException], str]
    details: Callable[[BaseException], list[Message]] = lambda _exc: []
    applies: Callable[[BaseException], bool] = lambda _exc: True
    log_it: bool = False

    def matches(self, exc: BaseException) -> bool:
        return isinstance(exc, self.catches) and self.applies(exc)


def _own_message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, e.PrivetError) else ""


def _bad_request(exc: BaseException) -> list[Message]:
    assert isinstance(exc, e.InvalidArgument)
    return [error_details_pb2.BadRequest(field_violations=[error_details_pb2.BadRequest.FieldViolation(field=bounded(exc.field, 256), description=bounded(exc.description, MAX_DETAIL_BYTES))])]


def _policy_denial(exc: BaseException) -> list[Message]:
    assert isinstance(exc, e.PermissionDenied)
    return [error_details_pb2.ErrorInfo(reason="POLICY_DENIED", domain=ERROR_DOMAIN,
                                        metadata={"policy_ids": bounded(",".join(exc.policy_ids), 256), "reasons": bounded("; ".join(exc.reasons), MAX_DETAIL_BYTES)})]


def _database_unreachable(exc: BaseException) -> bool:
    return isinstance(exc, (OperationalError, InterfaceError)) or (isinstance(exc, DBAPIError) and bool(exc.connection_invalidated))


def _client_stream_code(exc: BaseException) -> grpc.StatusCode:
    code = getattr(exc, "code", None)
    return (code() if callable(code) else None) or grpc.StatusCode.CANCELLED


def _client_stream_message(exc: BaseException) -> str:
    details = getattr(exc, "details", None)
    return (details() if callable(details) else "") or "the request stream failed"


ERROR_TABLE: tuple[Row, ...] = (
    Row(e.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, _own_message, _bad_request),
    Row(e.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED, _own_message),
    Row(e.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED, _own_message, _policy_denial),
    Row(e.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION, _own_message),
    Row(e.NotFound, grpc.StatusCode.NOT_FOUND, _own_message),
    Row(e.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS, _own_message),
    Row(e.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED, _own_message),
    Row(e.DataLoss, grpc.StatusCode.DATA_LOSS, _own_message),
    Row(e.Unavailable, grpc.StatusCode.UNAVAILABLE, _own_message),
    # A typed error with no row of its own is a Privet bug, but its message was written for callers.
    Row(e.PrivetError, grpc.StatusCode.INTERNAL, _own_message, log_it=True),
    Row(NotImplementedError, grpc.StatusCode.UNIMPLEMENTED, lambda _exc: "not implemented in this Privet version"),
    Row(DBAPIError, grpc.StatusCode.UNAVAILABLE, lambda _exc: "the database is unavailable; retry later", applies=_database_unreachable, log_it=True),
    # The client's own request stream failed (it cancelled, or sent an oversized message).
    Row(grpc.RpcError, _client_stream_code, _client_stream_message),
    Row(Exception, grpc.StatusCode.INTERNAL, lambda _exc: "internal error", log_it=True),
)


def row_for(exc: BaseException) -> Row:
    return next(row for row in ERROR_TABLE if row.matches(exc))


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def status_for(exc: BaseException) -> grpc.Status:
    """The gRPC status, with its google.rpc details, that `exc` ends a call with."""
    row = row_for(exc)
    if row.log_it:
        log.error("call failed: %s", type(exc).__name__, exc_info=exc)
    code = row.code(exc) if callable(row.code) else row.code
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=bounded(row.message(exc)), details=[_pack(d) for d in row.details(exc)]))


def abort_with(context: grpc.ServicerContext, exc: BaseException) -> None:
    context.abort_with_status(status_for(exc))


def is_abort(exc: BaseException) -> bool:
    """grpc's `context.abort` raises a bare Exception: it has set the status already."""
    return type(exc) is Exception and not exc.args

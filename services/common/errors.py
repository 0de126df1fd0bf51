"""The one table from Privet's typed errors to gRPC status codes, with google.rpc.Status details."""

from __future__ import annotations

import logging

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from privet.governance import errors as e

__all__ = ["STATUS_TABLE", "status_for", "abort_with"]

log = logging.getLogger("privet.errors")

ERROR_DOMAIN = "privet.local"

STATUS_TABLE: dict[type[e.PrivetError], grpc.StatusCode] = {
    e.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    e.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    e.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    e.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    e.NotFound: grpc.StatusCode.NOT_FOUND,
    e.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    e.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    e.DataLoss: grpc.StatusCode.DATA_LOSS,
    e.Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def _code_of(exc: e.PrivetError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in STATUS_TABLE:
            return STATUS_TABLE[cls]  # type: ignore[index]
    return grpc.StatusCode.INTERNAL


def _pack(message) -> any_pb2.Any:  # type: ignore[no-untyped-def]
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def status_for(exc: BaseException) -> grpc.Status:
    """The gRPC status for an exception. Anything that is not a PrivetError is INTERNAL with
    no detail: internals never leak to callers — except a database that cannot be reached,
    which is UNAVAILABLE (retryable), whoever noticed it first."""
    if isinstance(exc, (OperationalError, InterfaceError)) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        exc = e.Unavailable("the database is unavailable; retry later")
    if not isinstance(exc, e.PrivetError):
        log.exception("internal error", exc_info=exc)
        return rpc_status.to_status(status_pb2.Status(code=code_pb2.INTERNAL, message="internal error"))
    code = _code_of(exc)
    details = []
    if isinstance(exc, e.InvalidArgument):
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[error_details_pb2.BadRequest.FieldViolation(field=exc.field, description=exc.description)])))
    if isinstance(exc, e.PermissionDenied):
        details.append(
            _pack(
                error_details_pb2.ErrorInfo(
                    reason="POLICY_DENIED",
                    domain=ERROR_DOMAIN,
                    metadata={"policy_ids": ",".join(exc.policy_ids), "reasons": "; ".join(exc.reasons)},
                )
            )
        )
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=exc.message, details=details))


def abort_with(context: grpc.ServicerContext, exc: BaseException) -> None:
    context.abort_with_status(status_for(exc))

"""One row of the error table per typed error: the status code and its details."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from privet.governance import errors as e
from privet.services.common.errors import STATUS_TABLE, status_for

ROWS = [
    (e.InvalidArgument("header.k", "must be at least 2"), grpc.StatusCode.INVALID_ARGUMENT),
    (e.Unauthenticated("no certificate"), grpc.StatusCode.UNAUTHENTICATED),
    (e.PermissionDenied("no", policy_ids=("p1", "p2"), reasons=("epsilon 9 > 8",)), grpc.StatusCode.PERMISSION_DENIED),
    (e.FailedPrecondition("wrong stage"), grpc.StatusCode.FAILED_PRECONDITION),
    (e.NotFound("model x"), grpc.StatusCode.NOT_FOUND),
    (e.AlreadyExists("dataset x"), grpc.StatusCode.ALREADY_EXISTS),
    (e.ResourceExhausted("budget"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (e.DataLoss("tampered"), grpc.StatusCode.DATA_LOSS),
    (e.Unavailable("database"), grpc.StatusCode.UNAVAILABLE),
]


def test_every_error_class_has_a_row() -> None:
    assert {type(exc) for exc, _ in ROWS} == set(STATUS_TABLE)


def _details(status: grpc.Status) -> list:  # type: ignore[type-arg]
    from google.rpc import status_pb2

    for key, value in status.trailing_metadata:
        if key == "grpc-status-details-bin":
            return list(status_pb2.Status.FromString(value).details)
    return []


@pytest.mark.parametrize("exc,code", ROWS, ids=[type(r[0]).__name__ for r in ROWS])
def test_row(exc: e.PrivetError, code: grpc.StatusCode) -> None:
    status = status_for(exc)
    assert status.code == code
    assert status.details == exc.message
    details = _details(status)
    if isinstance(exc, e.InvalidArgument):
        bad = error_details_pb2.BadRequest()
        assert details[0].Unpack(bad) and bad.field_violations[0].field == "header.k"
    if isinstance(exc, e.PermissionDenied):
        info = error_details_pb2.ErrorInfo()
        assert details[0].Unpack(info) and info.metadata["policy_ids"] == "p1,p2" and "epsilon 9 > 8" in info.metadata["reasons"]


def test_unknown_errors_are_internal_without_detail() -> None:
    status = status_for(KeyError("secret internals"))
    assert status.code == grpc.StatusCode.INTERNAL and status.details == "internal error"
    assert rpc_status is not None

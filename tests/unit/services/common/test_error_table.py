"""The one error table: a test per row, each with an error of that row's kind, and the
status, message and details its caller sees."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from privet.governance import errors as e
from privet.services.common.errors import ERROR_TABLE, row_for, status_for


class _Unmapped(e.PrivetError):
    """A typed error nobody gave a row."""


class _ClientStreamFailed(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.RESOURCE_EXHAUSTED

    def details(self) -> str:
        return "Received message larger than max"


# (an error, the status code, the message the caller reads), one per row, in the table's order.
CASES = [
    (e.InvalidArgument("header.k", "must be at least 2"), grpc.StatusCode.INVALID_ARGUMENT, "header.k: must be at least 2"),
    (e.Unauthenticated("no certificate"), grpc.StatusCode.UNAUTHENTICATED, "no certificate"),
    (e.PermissionDenied("no", policy_ids=("p1", "p2"), reasons=("epsilon 9 > 8",)), grpc.StatusCode.PERMISSION_DENIED, "no"),
    (e.FailedPrecondition("wrong stage"), grpc.StatusCode.FAILED_PRECONDITION, "wrong stage"),
    (e.NotFound("model x"), grpc.StatusCode.NOT_FOUND, "model x"),
    (e.AlreadyExists("dataset x"), grpc.StatusCode.ALREADY_EXISTS, "dataset x"),
    (e.ResourceExhausted("budget"), grpc.StatusCode.RESOURCE_EXHAUSTED, "budget"),
    (e.DataLoss("tampered"), grpc.StatusCode.DATA_LOSS, "tampered"),
    (e.Unavailable("database"), grpc.StatusCode.UNAVAILABLE, "database"),
    (_Unmapped("written for callers"), grpc.StatusCode.INTERNAL, "written for callers"),
    (NotImplementedError("secret internals"), grpc.StatusCode.UNIMPLEMENTED, "not implemented in this Privet version"),
    (OperationalError("SELECT secret", {}, Exception("connection refused")), grpc.StatusCode.UNAVAILABLE, "the database is unavailable; retry later"),
    (_ClientStreamFailed(), grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than max"),
    (KeyError("secret internals"), grpc.StatusCode.INTERNAL, "internal error"),
]


def test_every_row_has_its_case_in_order() -> None:
    assert [ERROR_TABLE.index(row_for(exc)) for exc, _, _ in CASES] == list(range(len(ERROR_TABLE)))


def _details(status: grpc.Status) -> list:
    for key, value in status.trailing_metadata:
        if key == "grpc-status-details-bin":
            return list(status_pb2.Status.FromString(value).details)
    return []


@pytest.mark.parametrize(("exc", "code", "message"), CASES, ids=[f"{i}-{type(c[0]).__name__}" for i, c in enumerate(CASES)])
def test_row(exc: BaseException, code: grpc.StatusCode, message: str) -> None:
    status = status_for(exc)
    assert (status.code, status.details) == (code, message)
    details = _details(status)
    if isinstance(exc, e.InvalidArgument):
        bad = error_details_pb2.BadRequest()
        assert len(details) == 1 and details[0].Unpack(bad) and bad.field_violations[0].field == "header.k"
        assert bad.field_violations[0].description == "must be at least 2"
    elif isinstance(exc, e.PermissionDenied):
        info = error_details_pb2.ErrorInfo()
        assert len(details) == 1 and details[0].Unpack(info) and info.metadata["policy_ids"] == "p1,p2"
        assert "epsilon 9 > 8" in info.metadata["reasons"] and info.reason == "POLICY_DENIED"
    else:
        assert details == []


def test_a_database_error_that_is_not_a_lost_connection_stays_internal() -> None:
    # An integrity error is Privet's bug, not an outage: it must not read as retryable.
    status = status_for(IntegrityError("INSERT secret", {}, Exception("duplicate key")))
    assert (status.code, status.details) == (grpc.StatusCode.INTERNAL, "internal error")
    lost = DBAPIError("SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True)
    assert status_for(lost).code == grpc.StatusCode.UNAVAILABLE


def test_what_a_caller_reads_has_no_control_characters_and_is_bounded() -> None:
    # A message quoting the caller's input (a name with an escape sequence and a line break)
    # must stay one line on a terminal.
    status = status_for(e.NotFound("model 'zz\x1b[31mRED\nLINE2' not found" + "x" * 5000))
    assert "\x1b" not in status.details and "\n" not in status.details and "\\x1b[31mRED\\nLINE2" in status.details
    assert len(status.details) <= 1024


def test_the_bound_is_in_bytes_and_cuts_on_a_character() -> None:
    # What the trailers carry is bytes (percent-encoded, base64): 1024 CJK characters are
    # 3 KiB of UTF-8 and ~9 KiB on the wire.
    status = status_for(e.InvalidArgument("列" * 20, "名前" * 5000))
    assert len(status.details.encode()) <= 1024 and status.details.endswith("…")
    status.details.encode().decode("utf-8")  # no half character at the cut

"""Small helpers the tests share (clients over mTLS, status details)."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from governance.config import Home
from services.common.client import secure_channel


def channel(home: Home, principal: str, address: str) -> grpc.Channel:
    return secure_channel(home, principal, address)


def error_info(exc: grpc.RpcError) -> dict[str, str]:
    """The ErrorInfo metadata of a failed call's google.rpc.Status (empty if none)."""
    status = rpc_status.from_call(exc)
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return dict(info.metadata)
    return {}


def bad_request_fields(exc: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(exc)
    for detail in status.details if status else ():
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            return [v.field for v in bad.field_violations]
    return []

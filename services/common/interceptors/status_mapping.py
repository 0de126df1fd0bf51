"""Turn whatever a call raises into its gRPC status, by the one table
(`privet.services.common.errors.ERROR_TABLE`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from privet.services.common.errors import abort_with, is_abort
from privet.services.common.interceptors._rewrap import rewrap_in_scope

__all__ = ["ErrorStatusInterceptor"]


@contextlib.contextmanager
def errors_as_status(context: grpc.ServicerContext) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if is_abort(exc):  # the call already chose its status (context.abort)
            raise
        abort_with(context, exc)


class ErrorStatusInterceptor(grpc.ServerInterceptor):
    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        return None if handler is None else rewrap_in_scope(handler, errors_as_status)

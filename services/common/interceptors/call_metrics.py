"""Count every call by method and final status, and time it (Prometheus, `ServerMetrics`).

Outermost of the interceptors, so that it sees the status every inner one settled on,
denials and mapped errors included."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from privet.services.common.interceptors._rewrap import rewrap_in_scope
from privet.services.common.metrics import ServerMetrics

__all__ = ["CallMetricsInterceptor"]


class CallMetricsInterceptor(grpc.ServerInterceptor):
    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics

    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method = details.method

        @contextlib.contextmanager
        def counted(context: grpc.ServicerContext) -> Iterator[None]:
            started = self._metrics.started()
            try:
                yield
            finally:
                self._metrics.finished(method, context, started)

        return rewrap_in_scope(handler, counted)

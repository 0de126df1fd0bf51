"""Prometheus metrics of one Privet server, on its own HTTP port (GET /metrics).

Each server has its own registry, so `privet serve all` still shows each service apart.
Labels carry the RPC method and status only: never a principal, a dataset or a model, so
scraping the endpoint reveals traffic shapes, not who did what (that is the audit log's).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

from privet.governance.errors import InvalidArgument

__all__ = ["ServerMetrics"]

log = logging.getLogger("privet.metrics")

# Latency buckets from a cached policy decision (~100 µs) to a long upload (minutes).
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class ServerMetrics:
    """RPC counts by method and final status, latency by method, calls in flight, and any
    gauges the service adds."""

    def __init__(self, service: str, address: str = "") -> None:
        """`address` is where `serve` will listen ("host:port"; port 0 = any free one; "" =
        not at all). Raises InvalidArgument for anything else, before the service starts."""
        self.service = service
        self._host, self._port = _parse_address(service, address)
        self.registry = CollectorRegistry()
        self._requests = Counter("privet_rpc_requests", "RPCs finished, by method and final gRPC status.",
                                 ["method", "code"], registry=self.registry)
        self._duration = Histogram("privet_rpc_duration_seconds", "Time from the call's arrival to its last response.",
                                   ["method"], registry=self.registry, buckets=_BUCKETS)
        self._in_flight = Gauge("privet_rpc_in_flight", "RPCs being handled now.", registry=self.registry)
        self._http: WSGIServer | None = None
        self.port = 0

    def add_gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge whose value is `read()` at scrape time."""
        Gauge(name, documentation, registry=self.registry).set_function(read)

    def add_policy_load_gauge(self, failing: Callable[[], bool]) -> None:
        """`privet_policy_load_failing`: 1 while the policy files as they are now were refused
        (the last set that loaded keeps serving), 0 once a set loads. Alert on 1."""
        self.add_gauge("privet_policy_load_failing", "1 while the policy files on disk were refused and an older set serves.",
                       lambda: float(bool(failing())))

    def started(self) -> float:
        self._in_flight.inc()
        return time.perf_counter()

    def finished(self, method: str, context: grpc.ServicerContext, started: float) -> None:
        self._in_flight.dec()
        code = context.code() or grpc.StatusCode.OK
        self._requests.labels(method, code.name).inc()
        self._duration.labels(method).observe(time.perf_counter() - started)

    def serve(self) -> int:
        """Listen where the constructor was told (if anywhere); the port, 0 if not serving.
        Metrics are not worth a service: a port that cannot be bound is logged, not fatal."""
        if self._port is None:
            return 0
        try:
            self._http, _thread = start_http_server(self._port, self._host, registry=self.registry)
        except OSError as exc:
            log.error("%s: metrics not served on %s:%d: %s", self.service, self._host, self._port, exc)
            return 0
        self.port = int(self._http.server_port)
        log.info("%s metrics on http://%s:%d/metrics", self.service, self._host, self.port)
        return self.port

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


def _parse_address(service: str, address: str) -> tuple[str, int | None]:
    if not address:
        return "", None
    host, _, port = address.rpartition(":")
    if not port.isdigit() or int(port) > 65535:
        raise InvalidArgument(f"metrics.{service}", f"expected host:port (or \"\" for none), got {address!r}")
    return host or "127.0.0.1", int(port)

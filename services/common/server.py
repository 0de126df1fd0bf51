"""The server factory: every Privet server is mTLS-only, health-checked, reflectable,
size-limited, governed by the interceptor chain (one job each), and stops gracefully."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from privet.governance.runtime import Runtime
from privet.services.common.interceptors import audit_cut_off, governance_interceptors
from privet.services.common.metrics import ServerMetrics
from privet.services.common.tls_probe import TLS12Accepted, require_tls13_only
from privet.services.common.uploads import DEFAULT_IDLE_SECONDS, DEFAULT_MIN_BYTES_PER_SECOND, DEFAULT_PER_PRINCIPAL, UploadGate

__all__ = ["ServiceSpec", "RunningServer", "start_server", "server_credentials"]

log = logging.getLogger("privet.server")


@dataclass(frozen=True)
class ServiceSpec:
    """One gRPC service to host: its full name and how to add its servicer to a server."""

    full_name: str
    add: Callable[[grpc.Server], None]
    servicer: object = None


@dataclass
class RunningServer:
    name: str
    server: grpc.Server
    port: int
    health: health.HealthServicer
    servicers: list[object] = field(default_factory=list)
    on_stop: list[Callable[[float], None]] = field(default_factory=list)  # the service's own engines
    metrics: ServerMetrics | None = None

    def stop(self, grace: float = 10.0) -> None:
        """Graceful: report NOT_SERVING, refuse new calls, stop the service's engines, let
        running calls finish within `grace`."""
        self.health.enter_graceful_shutdown()
        for hook in self.on_stop:
            hook(grace)
        self.server.stop(grace).wait()
        if self.metrics is not None:
            self.metrics.close()


def server_credentials(runtime: Runtime, identity: str) -> grpc.ServerCredentials:
    home = runtime.home
    return grpc.ssl_server_credentials(
        [(home.key(identity).read_bytes(), home.cert(identity).read_bytes())],
        root_certificates=home.ca_cert.read_bytes(),
        require_client_auth=True,  # mutual TLS always: no certificate, no connection
    )


def start_server(runtime: Runtime, name: str, specs: Sequence[ServiceSpec], address: str, *, max_workers: int = 32,
                 metrics_address: str | None = None) -> RunningServer:
    """Start `specs` on `address` ("host:port", port 0 = any free one) as service `name`,
    with its Prometheus metrics on `metrics_address` (default: the configured one)."""
    limit = runtime.settings.max_message_bytes
    metrics = ServerMetrics(name, runtime.settings.metrics_addresses.get(name, "") if metrics_address is None else metrics_address)
    uploads, downloads = _stream_gate(runtime, "uploads", max_workers), _stream_gate(runtime, "streams", max_workers)
    for gate in (uploads, downloads):
        gate.on_cut_off(functools.partial(audit_cut_off, runtime))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"privet-{name}"),
        interceptors=governance_interceptors(runtime, metrics, uploads, downloads),
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0),  # two servers must never share a port by accident
            ("grpc.keepalive_permit_without_calls", 1),
        ],
        maximum_concurrent_rpcs=max_workers * 8,
    )
    for spec in specs:
        spec.add(server)
        for collector in getattr(spec.servicer, "metrics_collectors", lambda: ())():  # a service's own metrics
            metrics.registry.register(collector)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [spec.full_name for spec in specs]
    for service_name in ("", *names):
        health_servicer.set(service_name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server)
    port = server.add_secure_port(address, server_credentials(runtime, name))
    if port == 0:
        raise OSError(f"{name}: cannot listen on {address}")
    server.start()
    try:
        require_tls13_only(address, port, cert=runtime.home.cert(name), key=runtime.home.key(name))
    except TLS12Accepted:
        server.stop(None)
        raise
    log.info("%s listening on %s (port %d)", name, address, port)
    if name == "registry":  # the process that signs the log's checkpoints
        metrics.add_gauge("privet_audit_log_size", "Events in the audit log, as this process last committed.",
                          lambda: runtime.audit.committed_size)
    metrics.serve()
    running = RunningServer(name, server, port, health_servicer, [spec.servicer for spec in specs], metrics=metrics)

    def close_gates(_grace: float) -> None:
        uploads.close()
        downloads.close()

    running.on_stop.append(close_gates)
    return running


def _stream_gate(runtime: Runtime, section: str, max_workers: int) -> UploadGate:
    """Uploads and downloads get at most a quarter of the workers each (unary calls keep the
    other half), and their `[uploads]` / `[streams]` settings."""
    conf = runtime.settings.extra.get(section, {})
    return UploadGate(total=int(conf.get("total", max(1, max_workers // 4))), per_principal=int(conf.get("per_principal", DEFAULT_PER_PRINCIPAL)),
                      idle_seconds=float(conf.get("idle_seconds", DEFAULT_IDLE_SECONDS)), section=section,
                      min_bytes_per_second=float(conf.get("min_bytes_per_second", DEFAULT_MIN_BYTES_PER_SECOND)) if section == "uploads" else 0.0)

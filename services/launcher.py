"""Which gRPC services each Privet server hosts, and starting them on one runtime."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from privet.audit.v1 import audit_pb2, audit_pb2_grpc
from privet.governance.config import SERVICES
from privet.governance.runtime import Runtime
from privet.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from privet.kserve.v2 import grpc_predict_v2_pb2, grpc_predict_v2_pb2_grpc
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from privet.services.common.server import RunningServer, ServiceSpec, start_server
from privet.training.v1 import training_pb2, training_pb2_grpc

__all__ = ["SERVICE_FULL_NAMES", "specs_for", "start_services"]


@runtime_checkable
class Engine(Protocol):
    """A servicer with work of its own (the training scheduler, the inference batcher): it
    starts once every server is up, and stops with its server."""

    def start(self) -> None: ...

    def stop(self, grace: float) -> None: ...

log = logging.getLogger("privet.policy")


def _spec(descriptor_module, service: str, add: Callable, servicer: object) -> ServiceSpec:
    full_name = descriptor_module.DESCRIPTOR.services_by_name[service].full_name
    return ServiceSpec(full_name, lambda server: add(servicer, server), servicer)


def specs_for(name: str, runtime: Runtime) -> list[ServiceSpec]:
    """The services hosted by server `name`. A service not built yet answers UNIMPLEMENTED
    (the generated base servicer's behaviour)."""
    if name == "ingestion":
        from privet.services.ingestion.servicer import IngestionServicer

        return [_spec(ingestion_pb2, "IngestionService", ingestion_pb2_grpc.add_IngestionServiceServicer_to_server, IngestionServicer(runtime))]
    if name == "training":
        from privet.services.training.servicer import TrainingServicer

        return [_spec(training_pb2, "TrainingService", training_pb2_grpc.add_TrainingServiceServicer_to_server, TrainingServicer(runtime))]
    if name == "registry":
        from privet.services.registry.audit_servicer import AuditServicer
        from privet.services.registry.servicer import RegistryServicer

        return [
            _spec(registry_pb2, "RegistryService", registry_pb2_grpc.add_RegistryServiceServicer_to_server, RegistryServicer(runtime)),
            _spec(audit_pb2, "AuditService", audit_pb2_grpc.add_AuditServiceServicer_to_server, AuditServicer(runtime)),
        ]
    if name == "inference":
        from privet.services.inference.servicer import InferenceServicer

        return [_spec(grpc_predict_v2_pb2, "GRPCInferenceService", grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server, InferenceServicer(runtime))]
    raise ValueError(f"unknown service {name!r} (known: {', '.join(SERVICES)})")


SERVICE_FULL_NAMES = {
    "ingestion": ["privet.ingestion.v1.IngestionService"],
    "training": ["privet.training.v1.TrainingService"],
    "registry": ["privet.registry.v1.RegistryService", "privet.audit.v1.AuditService"],
    "inference": ["inference.GRPCInferenceService"],
}


def start_services(runtime: Runtime, names: Sequence[str], addresses: dict[str, str] | None = None, *,
                   policy_watch_every_s: float = 1.0) -> list[RunningServer]:
    """Start each named server on its configured address (or the override); the policy
    folder is checked for edits every `policy_watch_every_s` seconds."""
    addresses = {**runtime.settings.listen_addresses, **(addresses or {})}
    started: list[RunningServer] = []
    if "registry" in names:  # the registry process signs the log's checkpoints
        runtime.checkpointer.start()
    try:
        for name in names:
            started.append(start_server(runtime, name, specs_for(name, runtime), addresses[name]))
        for server in started:  # before any engine calls another service: where port-0 servers are
            if addresses[server.name].endswith(":0"):
                _record_bound(runtime, server, addresses[server.name])
        for server in started:
            for servicer in server.servicers:
                if isinstance(servicer, Engine):  # engines that call other services start last
                    servicer.start()
                    server.on_stop.append(servicer.stop)
        _watch_policies(runtime, started, policy_watch_every_s)
    except BaseException:
        for server in started:
            server.stop(0)
        raise
    return started


def _record_bound(runtime: Runtime, server: RunningServer, address: str) -> None:
    """Record where a server asked to listen on any port (host:0) is, for the others and the
    clients (`Home.settings()` resolves it), and forget it when the server stops."""
    host = address.rsplit(":", 1)[0]
    runtime.home.record_bound_address(server.name, f"{'127.0.0.1' if host in ('0.0.0.0', '[::]', '') else host}:{server.port}")
    server.on_stop.append(lambda _grace: runtime.home.bound_address(server.name).unlink(missing_ok=True))


def _watch_policies(runtime: Runtime, started: list[RunningServer], every_s: float = 1.0) -> None:
    """Reload policies when PRIVET_HOME/policies changes, without a restart; a set that does
    not validate is refused and the previous one keeps serving."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_s):
            try:
                runtime.policies.reload_if_changed()
            except Exception:  # the watcher outlives any one bad edit: the next change is still seen
                log.exception("policy watcher: reload failed; still watching %s", runtime.policies.folder)

    for server in started:
        if server.metrics is not None:
            server.metrics.add_policy_load_gauge(lambda: runtime.policies.failing)
    threading.Thread(target=loop, name="privet-policy-watch", daemon=True).start()
    if started:
        started[0].on_stop.append(lambda _grace: stop.set())



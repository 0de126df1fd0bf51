"""Each server serves Prometheus metrics on its own HTTP port: calls counted by method and
final status (a denial as PERMISSION_DENIED), latency observed, the audit log's size on the
registry; and no principal or resource name in any label."""

from __future__ import annotations

import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from privet.governance.config import SERVICES
from privet.governance.runtime import Runtime
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from tests.conftest import serve_on_any_ports
from tests.helpers import channel


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


@pytest.fixture
def running(sqlite_runtime: Runtime):
    servers, addresses = serve_on_any_ports(sqlite_runtime)
    yield addresses, {s.name: s for s in servers}
    for s in servers:
        s.stop(0)


def test_each_server_counts_its_calls_on_its_own_port(running, sqlite_runtime: Runtime) -> None:
    addresses, servers = running
    ports = {name: s.metrics.port for name, s in servers.items()}
    assert all(ports.values()) and len(set(ports.values())) == len(SERVICES)

    method = "/privet.registry.v1.RegistryService/ListModels"
    with channel(sqlite_runtime.home, "admin", addresses["registry"]) as ch:
        registry_pb2_grpc.RegistryServiceStub(ch).ListModels(registry_pb2.ListModelsRequest(), timeout=10)
    with channel(sqlite_runtime.home, "app", addresses["registry"]) as ch, pytest.raises(grpc.RpcError) as denied:
        registry_pb2_grpc.RegistryServiceStub(ch).ListModels(registry_pb2.ListModelsRequest(), timeout=10)
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED

    got = _scrape(ports["registry"])
    assert got[("privet_rpc_requests_total", (("code", "OK"), ("method", method)))] == 1
    assert got[("privet_rpc_requests_total", (("code", "PERMISSION_DENIED"), ("method", method)))] == 1
    assert got[("privet_rpc_duration_seconds_count", (("method", method),))] == 2
    assert got[("privet_rpc_in_flight", ())] == 0
    assert got[("privet_audit_log_size", ())] >= 1  # the denial was audited
    # Another server's registry saw none of it.
    assert not any(name == "privet_rpc_requests_total" and dict(labels).get("method") == method
                   for name, labels in _scrape(ports["ingestion"]))
    # Labels say what was called and how it ended, never who called or on what.
    labels = {v for (_, ls) in got for _, v in ls}
    assert not any("admin" in v or "app" in v.split("/")[-1] for v in labels)


def test_a_busy_metrics_port_does_not_stop_the_service(sqlite_runtime: Runtime) -> None:
    import socket

    from privet.services.common.server import start_server
    from privet.services.launcher import specs_for

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        server = start_server(sqlite_runtime, "training", specs_for("training", sqlite_runtime), "127.0.0.1:0",
                              metrics_address=f"127.0.0.1:{taken.getsockname()[1]}")
        try:
            assert server.port and server.metrics is not None and server.metrics.port == 0
        finally:
            server.stop(0)
    finally:
        taken.close()


@pytest.mark.parametrize("address", ["nonsense", "127.0.0.1:http", "127.0.0.1:70000"])
def test_a_malformed_metrics_address_is_refused_before_the_service_starts(sqlite_runtime: Runtime, address: str) -> None:
    from privet.governance.errors import InvalidArgument
    from privet.services.common.server import start_server
    from privet.services.launcher import specs_for

    with pytest.raises(InvalidArgument, match="metrics.training: expected host:port"):
        start_server(sqlite_runtime, "training", specs_for("training", sqlite_runtime), "127.0.0.1:0", metrics_address=address)

"""The running servers' policy watcher outlives an operator's mistake: a principals.yaml with a
typo'd role is refused (the metric says so, the last good set keeps serving), and the next good
change, removing a user, takes effect without a restart."""

from __future__ import annotations

import pathlib
import threading
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from privet.governance.runtime import Runtime
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from tests.conftest import make_home, metrics_on_any_port, serve_on_any_ports
from tests.helpers import channel, eventually

DEADLINE_S = 30  # the watcher looks every second; this only bounds a failing test


@pytest.fixture
def served(tmp_path: pathlib.Path):
    """All four servers on ports they chose, metrics included; yields (runtime, addresses,
    name -> RunningServer)."""
    home = make_home(tmp_path / "home")
    metrics_on_any_port(home)
    rt = Runtime.open(home)
    servers, addresses = serve_on_any_ports(rt)
    yield rt, addresses, {s.name: s for s in servers}
    for s in servers:
        s.stop(0)
    rt.close()


def _failing(port: int) -> float | None:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == "privet_policy_load_failing":
                return sample.value
    return None


def _list_models(rt: Runtime, who: str, address: str) -> grpc.StatusCode:
    with channel(rt.home, who, address) as ch:
        try:
            registry_pb2_grpc.RegistryServiceStub(ch).ListModels(registry_pb2.ListModelsRequest(), timeout=10)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def test_the_watcher_survives_a_bad_principals_file_and_loads_the_next_good_one(served) -> None:
    rt, addresses, servers = served
    port = servers["registry"].metrics.port
    assert port
    principals = rt.home.policies / "principals.yaml"
    good = principals.read_text()
    assert _list_models(rt, "carol", addresses["registry"]) is grpc.StatusCode.OK
    assert _failing(port) == 0

    # Remove carol, and misspell bob's role in the same edit: the whole edit is refused.
    principals.write_text(good.replace("  carol: {role: auditor}\n", "").replace("role: release-manager", "role: release-manger"))
    eventually(lambda: _failing(port) == 1, DEADLINE_S, "the refusal on the metric")
    assert all(_failing(s.metrics.port) == 1 for s in servers.values())  # every server says so
    assert "release-manger" in rt.policies.refused.problems[0]
    assert _list_models(rt, "carol", addresses["registry"]) is grpc.StatusCode.OK  # the last good set serves
    assert any(t.name == "privet-policy-watch" and t.is_alive() for t in threading.enumerate())

    # The fix, still without carol: it loads, and carol is gone at once.
    principals.write_text(good.replace("  carol: {role: auditor}\n", ""))
    eventually(lambda: _list_models(rt, "carol", addresses["registry"]) is grpc.StatusCode.UNAUTHENTICATED, DEADLINE_S, "carol removed")
    assert _failing(port) == 0 and rt.policies.refused is None
    assert _list_models(rt, "bob", addresses["registry"]) is grpc.StatusCode.OK

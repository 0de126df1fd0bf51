"""The running servers' policy watcher outlives an operator's mistake: a principals.yaml with a
typo'd role is refused (the metric says so, the last good set keeps serving), and the next good
change, removing a user, takes effect without a restart."""

from __future__ import annotations

import pathlib
import threading
import time
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from privet.governance.config import SERVICES
from privet.governance.runtime import Runtime
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from tests.conftest import make_home, use_free_ports
from tests.helpers import channel

DEADLINE_S = 30  # the watcher looks every second; this only bounds a failing test


@pytest.fixture
def served(tmp_path: pathlib.Path):
    """All four servers on free ports, metrics included (so the runtime reads the home after
    the ports are chosen); yields (runtime, addresses, name -> RunningServer)."""
    from privet.services.launcher import start_services

    home = make_home(tmp_path / "home")
    addresses = use_free_ports(home)
    rt = Runtime.open(home)
    servers = start_services(rt, SERVICES, addresses)
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


def _until(check, what: str):
    deadline = time.monotonic() + DEADLINE_S
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"never saw: {what}"
        time.sleep(0.1)


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
    _until(lambda: _failing(port) == 1, "the refusal on the metric")
    assert all(_failing(s.metrics.port) == 1 for s in servers.values())  # every server says so
    assert "release-manger" in rt.policies.refused.problems[0]
    assert _list_models(rt, "carol", addresses["registry"]) is grpc.StatusCode.OK  # the last good set serves
    assert any(t.name == "privet-policy-watch" and t.is_alive() for t in threading.enumerate())

    # The fix, still without carol: it loads, and carol is gone at once.
    principals.write_text(good.replace("  carol: {role: auditor}\n", ""))
    _until(lambda: _list_models(rt, "carol", addresses["registry"]) is grpc.StatusCode.UNAUTHENTICATED, "carol removed")
    assert _failing(port) == 0 and rt.policies.refused is None
    assert _list_models(rt, "bob", addresses["registry"]) is grpc.StatusCode.OK

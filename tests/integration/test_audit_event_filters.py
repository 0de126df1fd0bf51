"""Finding events: one spelling of a model version everywhere (`model/<name>/<version>`), prefix
filters, since/until, newest first, and page tokens that neither skip nor repeat in either
order."""

from __future__ import annotations

import time

import pytest

from privet.audit.v1 import audit_pb2, audit_pb2_grpc
from privet.common.v1 import types_pb2
from privet.governance.audit.auditor_reads import AuditReads
from privet.governance.audit.log import Event
from privet.governance.audit.storage import EventFilter
from privet.governance.errors import InvalidArgument
from privet.governance.registry.records import version_resource
from privet.governance.runtime import Runtime
from privet.kserve.v2 import grpc_predict_v2_pb2 as pb
from privet.kserve.v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.helpers import channel, eventually
from tests.integration.test_inference import release_toy


def _seed(rt: Runtime, resources: list[str], principal: str = "user/alice", action: str = "test.Thing") -> None:
    events = [Event(principal=principal, action=action, resource=r, decision="allow", details={}) for r in resources]
    rt.write(lambda _s: [rt.audit.append(e) for e in events])


def _pages(read, page_size: int) -> list[int]:
    seen, token = [], ""
    while True:
        page = read(page_size, token)
        seen += [e.seq for e in page.events]
        token = page.next_page_token
        if not token:
            return seen


@pytest.fixture
def audit(servers, sqlite_runtime):
    with channel(sqlite_runtime.home, "carol", servers["registry"]) as ch:
        yield audit_pb2_grpc.AuditServiceStub(ch)


def test_inference_counts_name_the_version_as_the_registry_does(servers, sqlite_runtime, audit) -> None:
    home = sqlite_runtime.home
    version, _, _ = release_toy(home, servers["registry"], "churn")
    request = pb.ModelInferRequest(model_name="churn")
    request.parameters["purpose"].string_param = "demo"
    age = request.inputs.add(name="age", datatype="FP64", shape=[1])
    age.contents.fp64_contents.append(40.0)
    plan = request.inputs.add(name="plan", datatype="BYTES", shape=[1])
    plan.contents.bytes_contents.append(b"basic")
    with channel(home, "app", servers["inference"]) as ch:
        pb_grpc.GRPCInferenceServiceStub(ch).ModelInfer(request, timeout=30)
    resource = version_resource("churn", version)
    assert resource == f"model/churn/{version}"

    def inference_events():
        return audit.ListEvents(audit_pb2.ListEventsRequest(resource=resource, action="inference.*")).events

    served = eventually(inference_events, what="the inference count in the audit log")
    assert {e.action for e in served} == {"inference.ModelInfer"}
    # One exact filter finds the version's whole history: registered, released, served.
    actions = {e.action for e in audit.ListEvents(audit_pb2.ListEventsRequest(resource=resource)).events}
    assert {"registry.CreateModelVersion", "registry.ReleaseModelVersion", "inference.ModelInfer"} <= actions


def test_filters_match_exactly_or_as_a_prefix_with_a_star(audit, sqlite_runtime) -> None:
    _seed(sqlite_runtime, ["model/churn/1", "model/churn/10", "model/churnx/1", "model/Churn/2", "model/a_b/1", "model/a%b/1"])
    _seed(sqlite_runtime, ["model/churn/2"], principal="user/alice2", action="test.Other")

    def resources(**kw) -> list[str]:
        return [e.resource for e in audit.ListEvents(audit_pb2.ListEventsRequest(**kw)).events if e.action.startswith("test.")]

    assert resources(resource="model/churn/1") == ["model/churn/1"]
    assert resources(resource="model/churn/*") == ["model/churn/1", "model/churn/10", "model/churn/2"]
    assert resources(resource="model/churn*") == ["model/churn/1", "model/churn/10", "model/churnx/1", "model/churn/2"]
    # Case, "_" and "%" are plain characters (no LIKE wildcards, no case folding).
    assert resources(resource="model/a_*") == ["model/a_b/1"]
    assert resources(resource="model/a%*") == ["model/a%b/1"]
    assert resources(resource="model/C*") == ["model/Churn/2"]
    assert resources(principal="user/alice") == resources(resource="model/*")[:-1]
    assert resources(principal="user/alice*", action="test.O*") == ["model/churn/2"]


def test_since_and_until_bound_the_time(audit, sqlite_runtime) -> None:
    _seed(sqlite_runtime, ["thing/before"])
    time.sleep(0.01)
    since = time.time()
    _seed(sqlite_runtime, ["thing/inside"])
    until = time.time()
    time.sleep(0.01)
    _seed(sqlite_runtime, ["thing/after"])
    request = audit_pb2.ListEventsRequest(resource="thing/*")
    request.since.FromMicroseconds(int(since * 1e6))
    request.until.FromMicroseconds(int(until * 1e6) + 1)
    assert [e.resource for e in audit.ListEvents(request).events] == ["thing/inside"]


def test_newest_first_pages_neither_skip_nor_repeat(sqlite_runtime) -> None:
    _seed(sqlite_runtime, [f"thing/{i}" for i in range(23)])
    reads = AuditReads(sqlite_runtime)
    everything = [e.seq for e in reads.events("user/carol", EventFilter(resource="thing/*"), page_size=100, page_token="").events]
    assert len(everything) == 23

    def newest(size: int, token: str):
        page = reads.events("user/carol", EventFilter(resource="thing/*", newest_first=True), page_size=size, page_token=token)
        if not token:
            _seed(sqlite_runtime, ["thing/late"])  # appended while paging: not on a later page
        return page

    assert _pages(newest, 5) == everything[::-1]
    oldest = _pages(lambda size, token: reads.events("user/carol", EventFilter(resource="thing/*"), page_size=size, page_token=token), 5)
    assert oldest == everything + [oldest[-1]] and oldest[-1] > everything[-1]


def test_newest_first_over_grpc(audit, sqlite_runtime) -> None:
    _seed(sqlite_runtime, [f"thing/{i}" for i in range(7)])

    def read(size: int, token: str):
        return audit.ListEvents(audit_pb2.ListEventsRequest(resource="thing/*", newest_first=True, page=types_pb2.PageRequest(page_size=size, page_token=token)))

    seqs = _pages(read, 3)
    assert len(seqs) == 7 and seqs == sorted(seqs, reverse=True)
    times = [e.time.ToMicroseconds() for e in read(7, "").events]
    assert times == sorted(times, reverse=True) and all(times)


def test_a_page_token_is_good_only_for_the_order_that_issued_it(runtime: Runtime) -> None:
    reads = AuditReads(runtime)
    for i in range(6):
        runtime.record(Event(principal="user/admin", action="test.Order", resource=f"order/{i}", decision="allow"))
    newest = reads.events("user/carol", EventFilter(resource="order/*", newest_first=True), page_size=2, page_token="")
    oldest = reads.events("user/carol", EventFilter(resource="order/*"), page_size=2, page_token="")
    assert newest.next_page_token.startswith("n") and not oldest.next_page_token.startswith("n")
    for flt, token in ((EventFilter(resource="order/*"), newest.next_page_token), (EventFilter(resource="order/*", newest_first=True), oldest.next_page_token)):
        with pytest.raises(InvalidArgument) as err:
            reads.events("user/carol", flt, page_size=2, page_token=token)
        assert err.value.field == "page.page_token"

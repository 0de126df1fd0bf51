"""A flood of denied calls costs the log a bounded number of events, and loses no count
(issue 19, item 5): identical denials are coalesced into counted events."""

from __future__ import annotations

import json
import time

import grpc
import pytest
from sqlalchemy import select

from privet.governance.store.tables import AuditEvent
from privet.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from tests.helpers import channel, eventually

CALLS = 400


def _denials(rt) -> list[AuditEvent]:
    with rt.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.principal == "user/app", AuditEvent.action == "ingestion.ListDatasets",
                                                             AuditEvent.decision == "deny")))


def _counted(events: list[AuditEvent], default: int | None = None) -> int:
    """The calls `events` stand for: each counted event's `requests`, `default` for one not counted."""
    return sum(int(json.loads(e.details).get("requests", default)) for e in events)


def test_a_flood_of_identical_denials_is_counted_not_written_one_by_one(servers, sqlite_runtime) -> None:
    started = time.monotonic()
    with channel(sqlite_runtime.home, "app", servers["ingestion"]) as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        for _ in range(CALLS):
            try:
                stub.ListDatasets(ingestion_pb2.ListDatasetsRequest(), timeout=5)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.PERMISSION_DENIED
    periods = time.monotonic() - started + 2  # one immediate and one counted event per second, at most
    # The counts reach the log with the next periodic flush (once a second).
    def all_counted() -> list[AuditEvent] | None:
        events = _denials(sqlite_runtime)
        return events if _counted(events, 1) == CALLS else None

    events = eventually(all_counted, 10, f"{CALLS} denials counted")
    assert _counted(events, 1) == CALLS  # how many: none lost
    assert len(events) <= 2 * periods < CALLS  # what it cost the log
    assert all(json.loads(e.policy_ids) == ["default-deny"] and e.resource == "api/ingestion" for e in events)  # who, what, which policy


def test_varying_the_purpose_or_model_of_refused_predictions_does_not_grow_the_log_per_call(servers, sqlite_runtime) -> None:
    """Red team round 2, N1: each refused inference call with a new purpose (up to 8 MiB of
    it) was its own event."""
    from privet.kserve.v2 import grpc_predict_v2_pb2 as pb
    from privet.kserve.v2 import grpc_predict_v2_pb2_grpc as pb_grpc

    calls = 200
    started = time.monotonic()
    with channel(sqlite_runtime.home, "app", servers["inference"]) as ch:
        stub = pb_grpc.GRPCInferenceServiceStub(ch)
        for i in range(calls):
            request = pb.ModelInferRequest(model_name=f"no-such-model-{i}")
            request.parameters["purpose"].string_param = f"purpose-{i}" if i % 2 else "x" * 100_000
            with pytest.raises(grpc.RpcError) as err:
                stub.ModelInfer(request, timeout=10)
            assert err.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
    flushes = time.monotonic() - started + 2  # one flush a second, at most 33 events each (32 keys and the folded rest)
    def all_counted() -> list[AuditEvent] | None:
        with sqlite_runtime.read() as session:
            events = list(session.scalars(select(AuditEvent).where(AuditEvent.action == "inference.ModelInfer", AuditEvent.principal == "user/app")))
        return events if _counted(events) == calls else None

    events = eventually(all_counted, 10, f"{calls} denied predictions counted")
    assert _counted(events) == calls
    assert len(events) <= 34 * flushes and max(len(e.details) for e in events) < 1000  # bounded per second, and small

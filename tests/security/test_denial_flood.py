"""A flood of denied calls costs the log a bounded number of events, and loses no count
(issue 19, item 5): identical denials are coalesced into counted events."""

from __future__ import annotations

import json
import time

import grpc
from sqlalchemy import select

from governance.store.tables import AuditEvent
from privet.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from tests.helpers import channel

CALLS = 400


def _denials(rt) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with rt.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.principal == "user/app", AuditEvent.action == "ingestion.ListDatasets",
                                                             AuditEvent.decision == "deny")))


def test_a_flood_of_identical_denials_is_counted_not_written_one_by_one(servers, sqlite_runtime) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    with channel(sqlite_runtime.home, "app", servers["ingestion"]) as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        for _ in range(CALLS):
            try:
                stub.ListDatasets(ingestion_pb2.ListDatasetsRequest(), timeout=5)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.PERMISSION_DENIED
    periods = time.monotonic() - started + 2  # one immediate and one counted event per second, at most
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = _denials(sqlite_runtime)
        counted = sum(int(json.loads(e.details).get("requests", 1)) for e in events)
        if counted == CALLS:
            break
        time.sleep(0.1)
    assert counted == CALLS  # how many: none lost
    assert len(events) <= 2 * periods < CALLS  # what it cost the log
    assert all(json.loads(e.policy_ids) == ["default-deny"] and e.resource == "api/ingestion" for e in events)  # who, what, which policy

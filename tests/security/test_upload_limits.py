"""Idle and parallel uploads cannot starve a server (issue 19, item 2), on real servers.

Before: 32 `CreateModelVersion` streams that sent their metadata and waited held every
registry worker; reads, the audit service and then inference timed out. Now an upload that
sends nothing for `[uploads] idle_seconds` is cut off (audited, nothing stored), one
principal may hold `per_principal` uploads at once (RESOURCE_EXHAUSTED past it, audited),
uploads take at most `total` workers, and reads keep answering while uploads wait.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from sqlalchemy import select

from privet.governance.store.registry_tables import ModelUpload, ModelVersion
from privet.governance.store.tables import AuditEvent
from privet.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from tests.helpers import channel

pytestmark = pytest.mark.privet_toml("[uploads]\nidle_seconds = 1.0\nper_principal = 2\ntotal = 3\n")


class _Stalled:
    """A request stream that sends its first message, then waits until released."""

    def __init__(self, first) -> None:
        self._first = first
        self.release = threading.Event()

    def __iter__(self) -> Iterator:
        yield self._first
        self.release.wait(60)


def _stalled_upload(stub, name: str) -> tuple[_Stalled, queue.Queue]:
    stream = _Stalled(registry_pb2.CreateModelVersionRequest(metadata=registry_pb2.ModelVersionMetadata(model_name=name)))
    outcome: queue.Queue = queue.Queue()

    def run() -> None:
        try:
            outcome.put(stub.CreateModelVersion(iter(stream), timeout=30))
        except grpc.RpcError as exc:
            outcome.put(exc)

    threading.Thread(target=run, daemon=True).start()
    return stream, outcome


def _events(rt, action: str) -> list[AuditEvent]:
    with rt.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action, AuditEvent.decision == "deny").order_by(AuditEvent.seq)))


def test_an_idle_upload_is_cut_off_leaving_nothing_and_audited(servers, sqlite_runtime) -> None:
    with channel(sqlite_runtime.home, "alice", servers["registry"]) as ch:
        stream, outcome = _stalled_upload(registry_pb2_grpc.RegistryServiceStub(ch), "idle")
        result = outcome.get(timeout=20)  # the watchdog cuts it off after about a second of silence
        stream.release.set()
    assert isinstance(result, grpc.RpcError) and result.code() == grpc.StatusCode.CANCELLED
    deadline = time.monotonic() + 10
    while not _events(sqlite_runtime, "registry.CreateModelVersion") and time.monotonic() < deadline:
        time.sleep(0.05)
    (event,) = _events(sqlite_runtime, "registry.CreateModelVersion")
    assert event.principal == "user/alice" and "cut off" in event.details
    with sqlite_runtime.read() as session:
        assert session.scalars(select(ModelVersion)).all() == [] and session.scalars(select(ModelUpload)).all() == []
    assert list(sqlite_runtime.blobs.digests()) == []


@pytest.mark.privet_toml("[uploads]\nidle_seconds = 60.0\nper_principal = 2\ntotal = 3\n")
def test_one_principal_cannot_hold_more_than_its_share_and_reads_keep_answering(servers, sqlite_runtime) -> None:
    home = sqlite_runtime.home
    with channel(home, "alice", servers["registry"]) as a, channel(home, "admin", servers["registry"]) as b, \
         channel(home, "bob", servers["registry"]) as reader, channel(home, "alice", servers["ingestion"]) as ing:
        alice, admin = registry_pb2_grpc.RegistryServiceStub(a), registry_pb2_grpc.RegistryServiceStub(b)
        held = [_stalled_upload(alice, f"held-{i}") for i in range(2)]
        time.sleep(0.2)
        # A third upload from the same principal is refused at once.
        third, outcome = _stalled_upload(alice, "third")
        refused = outcome.get(timeout=10)
        third.release.set()
        assert isinstance(refused, grpc.RpcError) and refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "per_principal = 2" in refused.details()
        # The server's total (3): one more from another principal fits, the next does not.
        more = [_stalled_upload(admin, f"admin-{i}") for i in range(2)]
        deadline = time.monotonic() + 10
        finished: list = []
        while not finished and time.monotonic() < deadline:  # whichever of the two came second
            finished = [o.get_nowait() for _, o in more if not o.empty()]
            time.sleep(0.02)
        assert len(finished) == 1, finished
        assert finished[0].code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "total = 3" in finished[0].details()
        # Reads answer while uploads wait; so does ingestion (its own server).
        assert registry_pb2_grpc.RegistryServiceStub(reader).ListModels(registry_pb2.ListModelsRequest(), timeout=5) is not None
        assert ingestion_pb2_grpc.IngestionServiceStub(ing).ListDatasets(ingestion_pb2.ListDatasetsRequest(), timeout=5) is not None
        for stream, _ in held + more:
            stream.release.set()
    refusals = [e for e in _events(sqlite_runtime, "registry.CreateModelVersion") if "in progress" in e.details]
    assert {e.principal for e in refusals} == {"user/alice", "user/admin"}


@pytest.mark.privet_toml("[streams]\nper_principal = 1\ntotal = 8\nidle_seconds = 60.0\n")
def test_a_client_that_opens_streams_and_never_reads_cannot_hold_more_than_its_share(servers, sqlite_runtime) -> None:
    """Red team round 2, N2/N3: unread WatchJob or ReadDataset streams held every worker."""
    from privet.governance.datasets.synthetic import customer_table
    from tests.integration.test_ingestion import _csv_bytes, _header, _requests

    with channel(sqlite_runtime.home, "alice", servers["ingestion"]) as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        stub.CreateDataset(_requests(_header("big", k=1, quasi_identifiers=[]), _csv_bytes(customer_table(20_000, seed=2))), timeout=120)
        held = stub.ReadDataset(ingestion_pb2.ReadDatasetRequest(name="big"), timeout=60)  # started, never read
        time.sleep(0.3)
        second = stub.ReadDataset(ingestion_pb2.ReadDatasetRequest(name="big"), timeout=60)
        with pytest.raises(grpc.RpcError) as err:
            next(second)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "[streams] per_principal = 1" in err.value.details()
        assert stub.GetDataset(ingestion_pb2.GetDatasetRequest(name="big"), timeout=5).name == "big"  # unary calls answer
        held.cancel()

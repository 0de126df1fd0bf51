"""AuditService over real mTLS: reads are permitted by role, audited, paged; proofs verify."""

from __future__ import annotations

import grpc
import pytest

from privet.audit.v1 import audit_pb2, audit_pb2_grpc
from privet.common.v1 import types_pb2
from privet.governance.audit.checkpoint import open_checkpoint
from privet.governance.audit.hashing import leaf_hash
from privet.governance.audit.leaf import decode_leaf
from privet.governance.audit.log import Event
from privet.governance.audit.merkle import verify_consistency, verify_inclusion
from privet.governance.runtime import Runtime
from tests.helpers import bad_request_fields, channel


def _seed(rt: Runtime, n: int) -> None:
    events = [Event(principal="user/alice" if i % 2 else "user/bob", action="test.Thing", resource=f"thing/{i}", decision="allow", details={"i": i}) for i in range(n)]
    rt.write(lambda _s: [rt.audit.append(e) for e in events])


@pytest.fixture
def audit(servers, sqlite_runtime):
    with channel(sqlite_runtime.home, "carol", servers["registry"]) as ch:
        yield audit_pb2_grpc.AuditServiceStub(ch)


def test_list_events_filters_and_pages(audit, sqlite_runtime) -> None:
    _seed(sqlite_runtime, 30)
    seen, token = [], ""
    while True:
        reply = audit.ListEvents(audit_pb2.ListEventsRequest(principal="user/alice", page=types_pb2.PageRequest(page_size=4, page_token=token)))
        seen += [e.resource for e in reply.events]
        token = reply.next_page_token
        if not token:
            break
    assert seen == [f"thing/{i}" for i in range(1, 30, 2)]
    with pytest.raises(grpc.RpcError) as err:
        audit.ListEvents(audit_pb2.ListEventsRequest(page=types_pb2.PageRequest(page_token="garbage")))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(err.value) == ["page.page_token"]


def test_every_read_is_audited(audit) -> None:
    audit.GetCheckpoint(audit_pb2.GetCheckpointRequest())
    reads = audit.ListEvents(audit_pb2.ListEventsRequest(principal="user/carol")).events
    assert [e.action for e in reads] == ["audit.GetCheckpoint", "audit.ListEvents"]


@pytest.mark.parametrize("who", ["alice", "bob", "dana", "app"])
def test_only_auditors_and_admins_read(servers, sqlite_runtime, who) -> None:
    with channel(sqlite_runtime.home, who, servers["registry"]) as ch:
        with pytest.raises(grpc.RpcError) as err:
            audit_pb2_grpc.AuditServiceStub(ch).ListEvents(audit_pb2.ListEventsRequest())
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with channel(sqlite_runtime.home, "admin", servers["registry"]) as ch:
        assert audit_pb2_grpc.AuditServiceStub(ch).ListEvents(audit_pb2.ListEventsRequest(decision="deny")).events


def test_proofs_verify_against_signed_checkpoints(audit, sqlite_runtime) -> None:
    _seed(sqlite_runtime, 11)
    old = audit.GetCheckpoint(audit_pb2.GetCheckpointRequest())
    _seed(sqlite_runtime, 20)
    new = audit.GetCheckpoint(audit_pb2.GetCheckpointRequest())
    old_cp, new_cp = open_checkpoint(old.note, sqlite_runtime.verifier), open_checkpoint(new.note, sqlite_runtime.verifier)
    assert new_cp.size > old_cp.size
    for seq in (0, 5, old_cp.size - 1, new_cp.size - 1):
        proof = audit.GetInclusionProof(audit_pb2.GetInclusionProofRequest(seq=seq, tree_size=new_cp.size))
        assert decode_leaf(proof.leaf).seq == seq
        assert verify_inclusion(leaf_hash(proof.leaf), seq, new_cp.size, list(proof.hashes), new_cp.root_hash)
    cons = audit.GetConsistencyProof(audit_pb2.GetConsistencyProofRequest(from_size=old_cp.size, to_size=new_cp.size))
    assert verify_consistency(old_cp.size, new_cp.size, old_cp.root_hash, new_cp.root_hash, list(cons.hashes))
    with pytest.raises(grpc.RpcError) as err:
        audit.GetInclusionProof(audit_pb2.GetInclusionProofRequest(seq=10**6))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_export_streams_every_event_in_order(audit, sqlite_runtime) -> None:
    _seed(sqlite_runtime, 2500)
    seqs = [e.seq for e in audit.ExportEvents(audit_pb2.ExportEventsRequest())]
    assert seqs == list(range(len(seqs))) and len(seqs) >= 2500
    assert audit.CheckLog(audit_pb2.CheckLogRequest()).ok


def test_checkpoints_are_produced_every_n_events(sqlite_runtime) -> None:
    import time

    rt = sqlite_runtime
    rt.checkpointer._every_events = 10
    rt.checkpointer.start()
    _seed(rt, 25)
    deadline = time.monotonic() + 10
    from privet.governance.audit.storage import latest_checkpoint

    while time.monotonic() < deadline:
        with rt.read() as s:
            cp = latest_checkpoint(s)
        if cp is not None and cp.size >= 20:
            break
        time.sleep(0.05)
    assert cp is not None and cp.size >= 20


def _field_of(call) -> list[str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value
    return bad_request_fields(err.value)


def test_bad_requests_name_their_own_field(audit, sqlite_runtime) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    _seed(sqlite_runtime, 5)
    assert _field_of(lambda: audit.GetConsistencyProof(audit_pb2.GetConsistencyProofRequest(from_size=1, to_size=10**6))) == ["to_size"]
    assert _field_of(lambda: audit.GetConsistencyProof(audit_pb2.GetConsistencyProofRequest(from_size=1, to_size=-2))) == ["to_size"]
    assert _field_of(lambda: list(audit.ExportEvents(audit_pb2.ExportEventsRequest(to_seq=-1)))) == ["to_seq"]
    assert _field_of(lambda: list(audit.ExportEvents(audit_pb2.ExportEventsRequest(from_seq=-1)))) == ["from_seq"]
    assert _field_of(lambda: audit.GetCheckpoint(audit_pb2.GetCheckpointRequest(tree_size=-1))) == ["tree_size"]
    huge_token = types_pb2.PageRequest(page_token=str(2**70))
    assert _field_of(lambda: audit.ListEvents(audit_pb2.ListEventsRequest(page=huge_token))) == ["page.page_token"]
    far = Timestamp(seconds=10**15)
    assert _field_of(lambda: audit.ListEvents(audit_pb2.ListEventsRequest(until=far))) == ["until"]
    assert _field_of(lambda: audit.ListEvents(audit_pb2.ListEventsRequest(since=far))) == ["since"]


def test_a_deleted_event_is_data_loss_for_proofs(audit, sqlite_runtime) -> None:
    from sqlalchemy import text

    _seed(sqlite_runtime, 20)
    with sqlite_runtime.engines.writer.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 3"))
    for call in (lambda: audit.GetInclusionProof(audit_pb2.GetInclusionProofRequest(seq=5, tree_size=20)),
                 lambda: audit.GetConsistencyProof(audit_pb2.GetConsistencyProofRequest(from_size=5, to_size=20))):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.DATA_LOSS and err.value.details() == "audit log altered: event 3 is not stored"


def test_auditors_can_still_read_a_log_frozen_as_altered(audit, sqlite_runtime) -> None:
    from sqlalchemy import text

    _seed(sqlite_runtime, 6)
    with sqlite_runtime.engines.writer.begin() as conn:
        conn.execute(text("UPDATE audit_events SET principal = 'user/mallory' WHERE seq = 2"))
    with pytest.raises(grpc.RpcError) as err:
        audit.CheckLog(audit_pb2.CheckLogRequest())
    assert err.value.code() == grpc.StatusCode.DATA_LOSS
    assert sqlite_runtime.audit.tampered
    # Reads cannot be recorded in a frozen log (the process log has them); they still answer.
    exported = list(audit.ExportEvents(audit_pb2.ExportEventsRequest()))
    assert [e.principal for e in exported][2] == "user/mallory"
    assert audit.ListEvents(audit_pb2.ListEventsRequest(principal="user/mallory")).events[0].seq == 2

"""AuditService (served by the registry process): translation onto
`privet.governance.audit.auditor_reads`, which records every read and computes the proofs."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from privet.audit.v1 import audit_pb2, audit_pb2_grpc
from privet.governance.audit.auditor_reads import AuditReads, LoggedEvent
from privet.governance.audit.storage import EventFilter
from privet.governance.errors import InvalidArgument
from privet.governance.paging import page_size
from privet.governance.runtime import Runtime
from privet.services.common.identity import caller

__all__ = ["AuditServicer", "event_message"]

# google.protobuf.Timestamp's own range: 0001-01-01 to 9999-12-31.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799


def _micros(ts: Timestamp, field: str) -> int:
    if not (ts.seconds or ts.nanos):
        return 0
    if not (_MIN_SECONDS <= ts.seconds <= _MAX_SECONDS and 0 <= ts.nanos < 1_000_000_000):
        raise InvalidArgument(field, "not a valid timestamp (years 1 to 9999)")
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def event_message(event: LoggedEvent) -> audit_pb2.AuditEvent:
    ts = Timestamp()
    ts.FromMicroseconds(event.time_us)
    return audit_pb2.AuditEvent(seq=event.seq, time=ts, principal=event.principal, action=event.action, resource=event.resource,
                                decision=event.decision, policy_ids=event.policy_ids, details_json=event.details_json, leaf=event.leaf)


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._reads = AuditReads(runtime)

    def _who(self, context: grpc.ServicerContext) -> str:
        return caller(context, self._rt).id.principal

    def ListEvents(self, request: audit_pb2.ListEventsRequest, context: grpc.ServicerContext) -> audit_pb2.ListEventsResponse:
        size = page_size(request.page.page_size)
        flt = EventFilter(request.principal, request.action, request.resource, request.decision, _micros(request.since, "since"), _micros(request.until, "until"),
                          newest_first=request.newest_first)
        page = self._reads.events(self._who(context), flt, page_size=size, page_token=request.page.page_token)
        return audit_pb2.ListEventsResponse(events=[event_message(e) for e in page.events], next_page_token=page.next_page_token)

    def GetCheckpoint(self, request: audit_pb2.GetCheckpointRequest, context: grpc.ServicerContext) -> audit_pb2.Checkpoint:
        cp = self._reads.checkpoint(self._who(context), request.tree_size)
        return audit_pb2.Checkpoint(note=cp.note, tree_size=cp.size, root_hash=cp.root_hash, origin=self._rt.settings.audit_origin)

    def GetInclusionProof(self, request: audit_pb2.GetInclusionProofRequest, context: grpc.ServicerContext) -> audit_pb2.InclusionProof:
        p = self._reads.inclusion_proof(self._who(context), request.seq, request.tree_size)
        return audit_pb2.InclusionProof(leaf_index=p.leaf_index, tree_size=p.tree_size, hashes=p.hashes, leaf=p.leaf)

    def GetConsistencyProof(self, request: audit_pb2.GetConsistencyProofRequest, context: grpc.ServicerContext) -> audit_pb2.ConsistencyProof:
        p = self._reads.consistency_proof(self._who(context), request.from_size, request.to_size)
        return audit_pb2.ConsistencyProof(from_size=p.from_size, to_size=p.to_size, hashes=p.hashes)

    def ExportEvents(self, request: audit_pb2.ExportEventsRequest, context: grpc.ServicerContext) -> Iterator[audit_pb2.AuditEvent]:
        for event in self._reads.export(self._who(context), request.from_seq, request.to_seq):
            if not context.is_active():
                return
            yield event_message(event)

    def CheckLog(self, request: audit_pb2.CheckLogRequest, context: grpc.ServicerContext) -> audit_pb2.CheckLogResponse:
        report = self._reads.check(self._who(context))
        return audit_pb2.CheckLogResponse(ok=True, tree_size=report.size, message=report.message)

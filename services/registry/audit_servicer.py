"""AuditService (served by the registry process): thin translation onto governance.audit."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from privet.audit.v1 import audit_pb2, audit_pb2_grpc
from privet.governance.audit.log import Event
from privet.governance.audit.merkle import consistency_proof, inclusion_proof
from privet.governance.audit.storage import EventFilter, SqlNodeReader, checkpoint_at, head_size, iter_events, list_events
from privet.governance.errors import DataLoss, InvalidArgument, NotFound
from privet.governance.paging import page_size
from privet.governance.runtime import Runtime
from privet.governance.store.tables import AuditCheckpoint, AuditEvent
from privet.services.common.identity import caller

__all__ = ["AuditServicer", "event_message"]

log = logging.getLogger("privet.audit")

_MAX_SEQ = 2**63 - 1
# google.protobuf.Timestamp's own range: 0001-01-01 to 9999-12-31.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799


def _micros(ts: Timestamp, field: str) -> int:
    if not (ts.seconds or ts.nanos):
        return 0
    if not (_MIN_SECONDS <= ts.seconds <= _MAX_SECONDS and 0 <= ts.nanos < 1_000_000_000):
        raise InvalidArgument(field, "not a valid timestamp (years 1 to 9999)")
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def _policy_ids(stored: str) -> list[str]:
    """The stored JSON list, or, where an edit left something else, the stored text as it is:
    an export must still carry the row, so that offline verification names it."""
    try:
        ids = json.loads(stored)
    except ValueError:
        return [stored]
    return ids if isinstance(ids, list) and all(isinstance(i, str) for i in ids) else [stored]


def event_message(row: AuditEvent) -> audit_pb2.AuditEvent:
    ts = Timestamp()
    ts.FromMicroseconds(row.time_us)
    return audit_pb2.AuditEvent(
        seq=row.seq, time=ts, principal=row.principal, action=row.action, resource=row.resource,
        decision=row.decision, policy_ids=_policy_ids(row.policy_ids), details_json=row.details, leaf=row.leaf,
    )


def _checkpoint_message(cp: AuditCheckpoint, origin: str) -> audit_pb2.Checkpoint:
    return audit_pb2.Checkpoint(note=cp.note, tree_size=cp.size, root_hash=cp.root_hash, origin=origin)


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def _audit_read(self, context: grpc.ServicerContext, rpc: str, details: dict) -> None:
        """Every read of the log is itself an event, durable before the answer is sent. A log
        found altered takes no more writes, this one included: the read then goes to the
        process log, so that auditors can still read and export what is stored to investigate."""
        who = caller(context, self._rt)
        event = Event(principal=who.id.principal, action=f"audit.{rpc}", resource="audit/log", decision="allow", details=details)
        if self._rt.audit.tampered:
            log.warning("audit log frozen (%s): read audit.%s by %s %s recorded here instead", self._rt.audit.tampered, rpc, event.principal, details)
            return
        self._rt.record(event)

    def _tree_size(self, requested: int, field: str = "tree_size") -> int:
        if requested < 0:
            raise InvalidArgument(field, "must not be negative")
        if requested == 0:
            return self._rt.checkpointer.checkpoint_now().size
        with self._rt.read() as session:
            if requested > head_size(session):
                raise InvalidArgument(field, f"{requested} is beyond the log's size")
        return requested

    def ListEvents(self, request, context):  # type: ignore[no-untyped-def]
        page = request.page
        size = page_size(page.page_size)
        try:
            after = int(page.page_token) if page.page_token else -1
        except ValueError as exc:
            raise InvalidArgument("page.page_token", "not a token this service issued") from exc
        if not -1 <= after <= _MAX_SEQ:
            raise InvalidArgument("page.page_token", "not a token this service issued")
        flt = EventFilter(request.principal, request.action, request.resource, request.decision,
                          _micros(request.since, "since"), _micros(request.until, "until"))
        self._audit_read(context, "ListEvents", {k: v for k, v in flt.__dict__.items() if v} | {"after": after})
        with self._rt.read() as session:
            rows = list_events(session, flt, after_seq=after, limit=size + 1)
        token = str(rows[size - 1].seq) if len(rows) > size else ""
        return audit_pb2.ListEventsResponse(events=[event_message(r) for r in rows[:size]], next_page_token=token)

    def GetCheckpoint(self, request, context):  # type: ignore[no-untyped-def]
        if request.tree_size < 0:
            raise InvalidArgument("tree_size", "must not be negative")
        self._audit_read(context, "GetCheckpoint", {"tree_size": request.tree_size})
        if request.tree_size == 0:
            cp = self._rt.checkpointer.checkpoint_now()
        else:
            with self._rt.read() as session:
                cp = checkpoint_at(session, request.tree_size)
            if cp is None:
                raise NotFound(f"no signed checkpoint at tree size {request.tree_size}")
        return _checkpoint_message(cp, self._rt.settings.audit_origin)

    def GetInclusionProof(self, request, context):  # type: ignore[no-untyped-def]
        self._audit_read(context, "GetInclusionProof", {"seq": request.seq, "tree_size": request.tree_size})
        size = self._tree_size(request.tree_size)
        if not 0 <= request.seq < size:
            raise InvalidArgument("seq", f"must be in [0, {size}) for a tree of size {size}")
        with self._rt.read() as session:
            row = session.get(AuditEvent, request.seq)
            if row is None:
                raise DataLoss(f"event {request.seq} is missing from the log")
            hashes = inclusion_proof(request.seq, size, SqlNodeReader(session))
        return audit_pb2.InclusionProof(leaf_index=request.seq, tree_size=size, hashes=hashes, leaf=row.leaf)

    def GetConsistencyProof(self, request, context):  # type: ignore[no-untyped-def]
        self._audit_read(context, "GetConsistencyProof", {"from_size": request.from_size, "to_size": request.to_size})
        to_size = self._tree_size(request.to_size, "to_size")
        if not 0 <= request.from_size <= to_size:
            raise InvalidArgument("from_size", f"must be in [0, {to_size}]")
        with self._rt.read() as session:
            hashes = consistency_proof(request.from_size, to_size, SqlNodeReader(session))
        return audit_pb2.ConsistencyProof(from_size=request.from_size, to_size=to_size, hashes=hashes)

    def ExportEvents(self, request, context) -> Iterator[audit_pb2.AuditEvent]:  # type: ignore[no-untyped-def]
        for field in ("from_seq", "to_seq"):
            if getattr(request, field) < 0:
                raise InvalidArgument(field, "sequence numbers are not negative")
        self._audit_read(context, "ExportEvents", {"from_seq": request.from_seq, "to_seq": request.to_seq})
        with self._rt.read() as session:
            end = request.to_seq or head_size(session)
            for row in iter_events(session, request.from_seq, end):
                if not context.is_active():
                    return
                yield event_message(row)

    def CheckLog(self, request, context):  # type: ignore[no-untyped-def]
        self._audit_read(context, "CheckLog", {})
        report = self._rt.check_audit_log()
        if not report.ok:
            raise DataLoss(report.message)
        return audit_pb2.CheckLogResponse(ok=True, tree_size=report.size, message=report.message)

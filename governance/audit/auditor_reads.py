"""What an auditor reads from the log: pages of events, checkpoints, proofs, an export, a
check. Every read is itself an event, durable before the answer is given; a log found
altered takes no more writes, so a read of it goes to the process log instead, and the
auditors can still read and export what is stored to investigate."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from sqlmodel import Session

from privet.governance.audit.checkpointer import Checkpointer
from privet.governance.audit.integrity import IntegrityReport
from privet.governance.audit.log import AuditLog, Event
from privet.governance.audit.merkle import consistency_proof, inclusion_proof
from privet.governance.audit.storage import EventFilter, SqlNodeReader, checkpoint_at, head_size, iter_events, list_events
from privet.governance.errors import DataLoss, InvalidArgument, NotFound
from privet.governance.paging import after_number
from privet.governance.store.tables import AuditCheckpoint, AuditEvent

__all__ = ["AuditReads", "LogAccess", "LoggedEvent", "EventsPage", "InclusionProof", "ConsistencyProof", "MAX_SEQ"]

log = logging.getLogger("privet.audit")

MAX_SEQ = 2**63 - 1
MAX_FILTER_CHARS = 256


class LogAccess(Protocol):
    """The parts of a runtime that reading the log needs."""

    audit: AuditLog
    checkpointer: Checkpointer

    def read(self) -> contextlib.AbstractContextManager[Session]: ...

    def record(self, event: Event, timeout: float | None = None) -> int: ...

    def check_audit_log(self) -> IntegrityReport: ...


@dataclass(frozen=True)
class LoggedEvent:
    seq: int
    time_us: int
    principal: str
    action: str
    resource: str
    decision: str
    policy_ids: list[str]
    details_json: str
    leaf: bytes

    @classmethod
    def of(cls, row: AuditEvent) -> LoggedEvent:
        return cls(row.seq, row.time_us, row.principal, row.action, row.resource, row.decision, _policy_ids(row.policy_ids), row.details, row.leaf)


@dataclass(frozen=True)
class EventsPage:
    events: list[LoggedEvent]
    next_page_token: str


@dataclass(frozen=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    hashes: list[bytes]
    leaf: bytes


@dataclass(frozen=True)
class ConsistencyProof:
    from_size: int
    to_size: int
    hashes: list[bytes]


def _policy_ids(stored: str) -> list[str]:
    """The stored JSON list, or, where an edit left something else, the stored text as it is:
    an export must still carry the row, so that offline verification names it."""
    try:
        ids = json.loads(stored)
    except ValueError:
        return [stored]
    return ids if isinstance(ids, list) and all(isinstance(i, str) for i in ids) else [stored]


# A page token is the last sequence number given, marked with the order that gave it: a
# newest-first token ("n<seq>") is refused oldest first and the other way round, as the proto says.
_NEWEST = "n"


def _token(seq: int, *, newest_first: bool) -> str:
    return f"{_NEWEST if newest_first else ''}{seq}"


def _after(token: str, *, newest_first: bool) -> int:
    if token and newest_first != token.startswith(_NEWEST):
        raise InvalidArgument("page.page_token", "not a token this service issued for this order")
    return after_number(token.removeprefix(_NEWEST))


class AuditReads:
    """The auditor's reads of one log, each recorded as `audit.<rpc>` by `principal`."""

    def __init__(self, access: LogAccess) -> None:
        self._log = access

    def _recorded(self, principal: str, rpc: str, details: dict[str, object]) -> None:
        event = Event(principal=principal, action=f"audit.{rpc}", resource="audit/log", decision="allow", details=details)
        if self._log.audit.tampered:
            log.warning("audit log frozen (%s): read audit.%s by %s %s recorded here instead", self._log.audit.tampered, rpc, principal, details)
            return
        self._log.record(event)

    def _tree_size(self, requested: int, field: str) -> int:
        """`requested`, or with 0 the size of a checkpoint signed now. Requires 0 <= requested <= the log's size."""
        if requested < 0:
            raise InvalidArgument(field, "must not be negative")
        if requested == 0:
            return self._log.checkpointer.checkpoint_now().size
        with self._log.read() as session:
            if requested > head_size(session):
                raise InvalidArgument(field, f"{requested} is beyond the log's size")
        return requested

    def events(self, principal: str, flt: EventFilter, *, page_size: int, page_token: str) -> EventsPage:
        for field in ("principal", "action", "resource", "decision"):
            if len(getattr(flt, field)) > MAX_FILTER_CHARS:  # no stored value is longer: bounded before any query
                raise InvalidArgument(field, f"at most {MAX_FILTER_CHARS} characters")
        after = _after(page_token, newest_first=flt.newest_first)
        self._recorded(principal, "ListEvents", {k: v for k, v in flt.__dict__.items() if v} | {"after": after})
        with self._log.read() as session:
            rows = list_events(session, flt, after_seq=after, limit=page_size + 1)
        token = _token(rows[page_size - 1].seq, newest_first=flt.newest_first) if len(rows) > page_size else ""
        return EventsPage([LoggedEvent.of(r) for r in rows[:page_size]], token)

    def checkpoint(self, principal: str, tree_size: int) -> AuditCheckpoint:
        """The signed checkpoint at `tree_size`, or one signed now for 0."""
        if tree_size < 0:
            raise InvalidArgument("tree_size", "must not be negative")
        self._recorded(principal, "GetCheckpoint", {"tree_size": tree_size})
        if tree_size == 0:
            return self._log.checkpointer.checkpoint_now()
        with self._log.read() as session:
            cp = checkpoint_at(session, tree_size)
        if cp is None:
            raise NotFound(f"no signed checkpoint at tree size {tree_size}")
        return cp

    def inclusion_proof(self, principal: str, seq: int, tree_size: int) -> InclusionProof:
        self._recorded(principal, "GetInclusionProof", {"seq": seq, "tree_size": tree_size})
        size = self._tree_size(tree_size, "tree_size")
        if not 0 <= seq < size:
            raise InvalidArgument("seq", f"must be in [0, {size}) for a tree of size {size}")
        with self._log.read() as session:
            row = session.get(AuditEvent, seq)
            if row is None:
                raise DataLoss(f"event {seq} is missing from the log")
            hashes = inclusion_proof(seq, size, SqlNodeReader(session))
        return InclusionProof(seq, size, list(hashes), row.leaf)

    def consistency_proof(self, principal: str, from_size: int, to_size: int) -> ConsistencyProof:
        self._recorded(principal, "GetConsistencyProof", {"from_size": from_size, "to_size": to_size})
        size = self._tree_size(to_size, "to_size")
        if not 0 <= from_size <= size:
            raise InvalidArgument("from_size", f"must be in [0, {size}]")
        with self._log.read() as session:
            hashes = consistency_proof(from_size, size, SqlNodeReader(session))
        return ConsistencyProof(from_size, size, list(hashes))

    def export(self, principal: str, from_seq: int, to_seq: int) -> Iterator[LoggedEvent]:
        """Events from `from_seq` up to `to_seq` (0: the log's end), in order. The read is
        recorded before the first event is given."""
        for field, value in (("from_seq", from_seq), ("to_seq", to_seq)):
            if value < 0:
                raise InvalidArgument(field, "sequence numbers are not negative")
        self._recorded(principal, "ExportEvents", {"from_seq": from_seq, "to_seq": to_seq})
        return self._exported(from_seq, to_seq)

    def _exported(self, from_seq: int, to_seq: int) -> Iterator[LoggedEvent]:
        with self._log.read() as session:
            end = to_seq or head_size(session)
            for row in iter_events(session, from_seq, end):
                yield LoggedEvent.of(row)

    def check(self, principal: str) -> IntegrityReport:
        """Recompute the whole log; DataLoss if it was altered."""
        self._recorded(principal, "CheckLog", {})
        report = self._log.check_audit_log()
        if not report.ok:
            raise DataLoss(report.message)
        return report

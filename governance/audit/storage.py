"""Reading the SQL-stored log: tree nodes, events, checkpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from governance.audit.leaf import EventRecord
from governance.store.tables import AuditCheckpoint, AuditEvent, AuditHead

__all__ = ["SqlNodeReader", "EventFilter", "head_size", "list_events", "iter_events", "latest_checkpoint", "checkpoint_at", "record_of"]


class SqlNodeReader:
    """NodeReader over the audit_nodes table (nodes never change once written)."""

    def __init__(self, session: Session) -> None:
        conn = session.connection()
        self._conn = conn
        ph = "?" if conn.dialect.name == "sqlite" else "%s"
        self._sql = f"SELECT hash FROM audit_nodes WHERE level = {ph} AND idx = {ph}"  # hot: driver-level

    def get_node(self, level: int, index: int) -> bytes:
        value = self._conn.exec_driver_sql(self._sql, (level, index)).scalar_one_or_none()
        if value is None:
            raise LookupError(f"audit node ({level}, {index}) is not stored")
        return value


@dataclass(frozen=True)
class EventFilter:
    principal: str = ""
    action: str = ""
    resource: str = ""
    decision: str = ""
    since_us: int = 0
    until_us: int = 0


def head_size(session: Session) -> int:
    return session.execute(select(AuditHead.size).where(AuditHead.id == 1)).scalar_one()


def list_events(session: Session, flt: EventFilter, *, after_seq: int, limit: int) -> list[AuditEvent]:
    """Events with seq > after_seq matching every non-empty filter field, oldest first."""
    query = select(AuditEvent).where(AuditEvent.seq > after_seq)
    if flt.principal:
        query = query.where(AuditEvent.principal == flt.principal)
    if flt.action:
        query = query.where(AuditEvent.action == flt.action)
    if flt.resource:
        query = query.where(AuditEvent.resource == flt.resource)
    if flt.decision:
        query = query.where(AuditEvent.decision == flt.decision)
    if flt.since_us:
        query = query.where(AuditEvent.time_us >= flt.since_us)
    if flt.until_us:
        query = query.where(AuditEvent.time_us < flt.until_us)
    return list(session.execute(query.order_by(AuditEvent.seq).limit(limit)).scalars())


def iter_events(session: Session, start: int = 0, end: int | None = None, page: int = 2000) -> Iterator[AuditEvent]:
    """Events with start <= seq < end in order, fetched in pages (bounded memory)."""
    after = start - 1
    while True:
        query = select(AuditEvent).where(AuditEvent.seq > after)
        if end is not None:
            query = query.where(AuditEvent.seq < end)
        rows = list(session.execute(query.order_by(AuditEvent.seq).limit(page)).scalars())
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


def record_of(row: AuditEvent) -> EventRecord:
    """The event as its stored columns say (which a tamperer may have edited)."""
    return EventRecord(
        seq=row.seq,
        time_us=row.time_us,
        principal=row.principal,
        action=row.action,
        resource=row.resource,
        decision=row.decision,
        policy_ids=tuple(json.loads(row.policy_ids)),
        details=json.loads(row.details),
    )


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    return session.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.size.desc()).limit(1)).scalar_one_or_none()


def checkpoint_at(session: Session, size: int) -> AuditCheckpoint | None:
    return session.get(AuditCheckpoint, size)

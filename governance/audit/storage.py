"""Reading the SQL-stored log: tree nodes, events, checkpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, Table, func, inspect, select
from sqlmodel import Session, SQLModel, col

from privet.governance.audit.leaf import EventRecord
from privet.governance.audit.merkle import perfect_root
from privet.governance.errors import DataLoss
from privet.governance.store.tables import AuditCheckpoint, AuditEvent, AuditHead, AuditNode

__all__ = [
    "LOWEST_STORED_LEVEL",
    "PREFIX_MARKER",
    "EventFilter",
    "MissingFromLog",
    "SqlNodeReader",
    "checkpoint_at",
    "count_stored_nodes",
    "head_size",
    "iter_events",
    "latest_checkpoint",
    "list_events",
    "record_of",
    "stored_nodes",
    "table_of",
]


# Perfect nodes below this level are not stored: a node of 2**level leaves is folded from
# the events' own leaf hashes. That keeps the append path to ~1/8 of a node
# row per event instead of ~2, and a proof still reads O(log n) rows.
LOWEST_STORED_LEVEL = 4


class MissingFromLog(DataLoss, LookupError):
    """A node or an event that the stored log must hold is not there (a row was deleted):
    the NodeReader's LookupError, and a DATA_LOSS for whoever asked."""


class SqlNodeReader:
    """NodeReader over the SQL log: audit_nodes from LOWEST_STORED_LEVEL up, lower nodes
    folded from audit_events.leaf_hash (nodes and leaf hashes never change once written).

    A proof's low siblings all lie in one aligned run of 2**LOWEST_STORED_LEVEL leaves, so
    the leaf hashes are read a whole run at a time and kept for the reader's life (one
    request): a proof costs one or two leaf reads (two when the right edge is in a partial
    run) plus its stored nodes."""

    _RUN = 1 << LOWEST_STORED_LEVEL

    def __init__(self, source: Session | Connection) -> None:
        conn = source.connection() if isinstance(source, Session) else source
        self._conn = conn
        ph = "?" if conn.dialect.name == "sqlite" else "%s"
        # Hot paths (proofs, the append frontier): driver-level SQL.
        self._node_sql = f"SELECT hash FROM audit_nodes WHERE level = {ph} AND idx = {ph}"
        self._leaves_sql = f"SELECT seq, leaf_hash FROM audit_events WHERE seq >= {ph} AND seq < {ph} ORDER BY seq"
        self._runs: dict[int, list[bytes]] = {}

    def get_node(self, level: int, index: int) -> bytes:
        if level < LOWEST_STORED_LEVEL:
            first = index << level
            run = self._run(first // self._RUN)
            offset = first % self._RUN
            hashes = run[offset:offset + (1 << level)]
            if len(hashes) != 1 << level:
                missing = first - offset + len(run)  # the run stops at its first gap
                raise MissingFromLog(f"audit log altered: event {missing} is not stored")
            return hashes[0] if level == 0 else perfect_root(hashes)
        value = self._conn.exec_driver_sql(self._node_sql, (level, index)).scalar_one_or_none()
        if value is None:
            raise MissingFromLog(f"audit log altered: tree node ({level}, {index}) is not stored")
        return bytes(value)

    def _run(self, number: int) -> list[bytes]:
        run = self._runs.get(number)
        if run is None:
            first = number * self._RUN
            run = []
            for seq, leaf_hash in self._conn.exec_driver_sql(self._leaves_sql, (first, first + self._RUN)):
                if seq != first + len(run):  # a gap (a deleted row): nothing past it is placed
                    break
                run.append(leaf_hash)
            self._runs[number] = run
        return run


#: A filter value ending in this matches as a prefix (the marker dropped); any other value exactly.
PREFIX_MARKER = "*"


@dataclass(frozen=True)
class EventFilter:
    """Which events a list returns. `principal`, `action` and `resource` match exactly, or as
    a prefix when they end in PREFIX_MARKER ("model/churn/*"); "" matches anything.
    `since_us` is inclusive, `until_us` exclusive (0: unbounded). `newest_first` reverses the
    order (by seq, which follows time)."""

    principal: str = ""
    action: str = ""
    resource: str = ""
    decision: str = ""
    since_us: int = 0
    until_us: int = 0
    newest_first: bool = False


def head_size(session: Session) -> int:
    return int(session.execute(select(col(AuditHead.size)).where(col(AuditHead.id) == 1)).scalar_one())


def _matching(column: Any, value: str) -> ColumnElement[bool]:
    if not value.endswith(PREFIX_MARKER):
        return cast(ColumnElement[bool], column == value)
    prefix = value[: -len(PREFIX_MARKER)]
    # substr, not LIKE: SQLite's LIKE ignores ASCII case, and "_" and "%" in a name would
    # need escaping; substr counts characters on both SQLite and PostgreSQL.
    return func.substr(column, 1, len(prefix)) == prefix


def list_events(session: Session, flt: EventFilter, *, after_seq: int, limit: int) -> list[AuditEvent]:
    """Events matching every non-empty filter field, at most `limit`: oldest first those with
    seq > after_seq; with `flt.newest_first`, newest first those with seq < after_seq
    (after_seq < 0: from the newest). Either way the next page starts after the last seq
    given, so pages neither skip nor repeat an event, whatever is appended meanwhile."""
    seq = col(AuditEvent.seq)
    if not flt.newest_first:
        query = select(AuditEvent).where(seq > after_seq)
    else:
        query = select(AuditEvent).where(seq < after_seq) if after_seq >= 0 else select(AuditEvent)
    for column, value in ((AuditEvent.principal, flt.principal), (AuditEvent.action, flt.action), (AuditEvent.resource, flt.resource)):
        if value:
            query = query.where(_matching(col(column), value))
    if flt.decision:
        query = query.where(col(AuditEvent.decision) == flt.decision)
    if flt.since_us:
        query = query.where(col(AuditEvent.time_us) >= flt.since_us)
    if flt.until_us:
        query = query.where(col(AuditEvent.time_us) < flt.until_us)
    return list(session.execute(query.order_by(seq.desc() if flt.newest_first else seq).limit(limit)).scalars())


def iter_events(session: Session, start: int = 0, end: int | None = None, page: int = 2000) -> Iterator[AuditEvent]:
    """Events with start <= seq < end in order, fetched in pages (bounded memory)."""
    after = start - 1
    while True:
        query = select(AuditEvent).where(col(AuditEvent.seq) > after)
        if end is not None:
            query = query.where(col(AuditEvent.seq) < end)
        rows = list(session.execute(query.order_by(col(AuditEvent.seq)).limit(page)).scalars())
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


def stored_nodes(session: Session, level: int, first: int, end: int) -> list[tuple[int, bytes]]:
    """The stored nodes of one level with first <= idx < end, as (idx, hash) in idx order."""
    query = (select(col(AuditNode.idx), col(AuditNode.hash))
             .where(col(AuditNode.level) == level, col(AuditNode.idx) >= first, col(AuditNode.idx) < end).order_by(col(AuditNode.idx)))
    return [(idx, h) for idx, h in session.execute(query)]


def count_stored_nodes(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(AuditNode)).scalar_one())


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    return session.execute(select(AuditCheckpoint).order_by(col(AuditCheckpoint.size).desc()).limit(1)).scalar_one_or_none()


def checkpoint_at(session: Session, size: int) -> AuditCheckpoint | None:
    return session.get(AuditCheckpoint, size)


def table_of(model: type[SQLModel]) -> Table:
    """The Core table a SQLModel table class maps (for dialect-specific INSERTs)."""
    table = inspect(model).local_table
    assert isinstance(table, Table), f"{model.__name__} does not map a table"
    return table

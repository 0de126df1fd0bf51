"""Run-time tamper detection: recompute the stored log from the events table.

Catches a row edited, deleted, inserted or reordered behind Privet's back: every row's fields
must re-encode to its stored leaf bytes, sequence numbers must be dense, the recomputed tree
must reproduce every signed checkpoint, every stored tree node and the stored tree head.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session, col

from privet.governance.audit.checkpoint import NoteVerifier, open_checkpoint
from privet.governance.audit.hashing import leaf_hash
from privet.governance.audit.leaf import encode_leaf
from privet.governance.audit.merkle import MerkleFrontier, root
from privet.governance.audit.storage import (
    LOWEST_STORED_LEVEL,
    SqlNodeReader,
    count_stored_nodes,
    head_size,
    iter_events,
    record_of,
    stored_nodes,
)
from privet.governance.errors import DataLoss
from privet.governance.store.tables import AuditCheckpoint, AuditEvent

__all__ = ["IntegrityReport", "check_log"]


@dataclass(frozen=True)
class IntegrityReport:
    ok: bool
    size: int
    message: str
    first_bad_seq: int | None = None


def _bad(seq: int | None, size: int, why: str) -> IntegrityReport:
    where = f"event {seq}: " if seq is not None else ""
    return IntegrityReport(False, size, f"audit log altered: {where}{why}", seq)


# Events between two comparisons of the tree nodes they completed.
_NODE_PAGE = 4096


class _StoredNodeCheck:
    """Holds the stored tree nodes to the ones recomputed from the events, a page of events at
    a time: what a page completes at one level is one run of indexes, so one range read each.
    Proofs and signed tree heads are built from these nodes, so one edited node would make a
    valid event's proof fail, or a checkpoint sign a root the events do not give."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._pending: dict[int, list[tuple[int, bytes]]] = {}
        self.compared = 0

    def add(self, completed: list[tuple[int, int, bytes]]) -> None:
        for level, idx, h in completed:
            if level >= LOWEST_STORED_LEVEL:
                self._pending.setdefault(level, []).append((idx, h))

    def first_mismatch(self) -> tuple[int, int] | None:
        """(level, idx) of the first pending node stored with another hash or not at all."""
        pending, self._pending = self._pending, {}
        for level in sorted(pending):
            want = pending[level]
            stored = dict(stored_nodes(self._session, level, want[0][0], want[-1][0] + 1))
            for idx, h in want:
                if stored.get(idx) != h:
                    return level, idx
            self.compared += len(want)
        return None


def _bad_node(level: int, idx: int, size: int) -> IntegrityReport:
    first, last = idx << level, ((idx + 1) << level) - 1
    return _bad(None, size, f"stored tree node ({level}, {idx}) is missing or does not match events {first}..{last}")


def _leaf_of_row(row: AuditEvent) -> bytes | None:
    """The leaf its stored fields encode to, or None when they cannot be read back as an event
    (not JSON, a float, a null where a list belongs: all edits)."""
    try:
        return encode_leaf(record_of(row))
    except (ValueError, TypeError):
        return None


def check_log(session: Session, verifier: NoteVerifier) -> IntegrityReport:
    size = head_size(session)
    checkpoints = list(session.execute(select(AuditCheckpoint).order_by(col(AuditCheckpoint.size))).scalars())
    signed: list[tuple[int, bytes]] = []
    for cp in checkpoints:
        try:
            opened = open_checkpoint(cp.note, verifier)
        except (DataLoss, ValueError) as exc:
            return _bad(None, size, f"checkpoint at size {cp.size} does not verify: {exc}")
        if opened.size != cp.size or opened.root_hash != cp.root_hash:
            return _bad(None, size, f"checkpoint row at size {cp.size} disagrees with its signed note")
        signed.append((opened.size, opened.root_hash))
    frontier = MerkleFrontier()
    nodes = _StoredNodeCheck(session)
    pending = iter(signed)
    nxt = next(pending, None)
    while nxt is not None and nxt[0] == 0:
        nxt = next(pending, None)
    expected = 0
    for row in iter_events(session):
        if row.seq != expected:
            return _bad(expected, size, "missing (deleted or renumbered)" if row.seq > expected else "out of order")
        leaf = _leaf_of_row(row)
        if leaf is None:
            return _bad(row.seq, size, "its stored fields do not decode to an event (edited)")
        if leaf != row.leaf:
            return _bad(row.seq, size, "its fields do not match its leaf bytes (edited)")
        lh = leaf_hash(leaf)
        if lh != row.leaf_hash:
            return _bad(row.seq, size, "its leaf hash was changed")
        nodes.add(frontier.append_leaf_hash(lh))
        expected += 1
        if expected % _NODE_PAGE == 0 and (bad := nodes.first_mismatch()):
            return _bad_node(*bad, size)
        while nxt is not None and nxt[0] == expected:
            if frontier.root() != nxt[1]:
                return _bad(None, size, f"events before {expected} do not reproduce the signed checkpoint at size {expected}")
            nxt = next(pending, None)
    if expected != size:
        return _bad(expected, size, f"the head says {size} events but {expected} are stored")
    if nxt is not None:
        return _bad(None, size, f"a signed checkpoint at size {nxt[0]} is beyond the stored log")
    if bad := nodes.first_mismatch():
        return _bad_node(*bad, size)
    if count_stored_nodes(session) != nodes.compared:
        return _bad(None, size, "the stored tree holds nodes that no events account for (inserted)")
    if size and root(size, SqlNodeReader(session)) != frontier.root():
        return _bad(None, size, "the stored tree nodes do not match the events")
    return IntegrityReport(True, size, f"audit log intact: {size} events, {len(signed)} signed checkpoints reproduced")

"""Appending to the audit log inside the caller's transaction (SQL storage of the Merkle log).

The log head row is locked for the whole batch, so the database assigns dense sequence
numbers even with several replicas; the right edge of the tree (its "frontier", at most one
stored node per bit of the size: `merkle.MerkleFrontier`) is cached, so an append costs
O(log n) hashing and no reads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from privet.governance.audit.hashing import leaf_hash
from privet.governance.audit.leaf import (
    canonical_json_fast,
    encode_leaf_fast,
    find_surrogate,
    may_hold_surrogate,
)
from privet.governance.audit.merkle import MerkleFrontier, frontier_keys
from privet.governance.audit.storage import LOWEST_STORED_LEVEL, SqlNodeReader
from privet.governance.audit.writes import lock_head, write_batch
from privet.governance.errors import DataLoss, InvalidArgument

__all__ = ["AuditLog", "Event", "canonical_details", "frontier_keys"]


@dataclass(frozen=True)
class Event:
    principal: str
    action: str
    resource: str
    decision: str  # allow | deny | info
    policy_ids: tuple[str, ...] = ()
    details: dict[str, Any] | None = None


_SCALARS = frozenset({str, int, bool, type(None)})


def canonical_details(value: Any) -> Any:
    """Make details canonical-JSON safe: floats become their shortest repr string."""
    if type(value) is dict and all(type(k) is str and type(v) in _SCALARS for k, v in value.items()):
        return value  # the common flat case: nothing to convert
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): canonical_details(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical_details(v) for v in value]
    return value


class AuditLog:
    """A batch participant of the Transactor; `append` is called by units of work."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        # The tree's right edge as of this batch; None: not known, reload at the next begin.
        self._edge: MerkleFrontier | None = None
        self._events: list[dict[str, Any]] = []
        self._nodes: list[dict[str, Any]] = []
        self.committed_size = 0
        # The right edge as of the last commit: the tree as this process appended it.
        self._committed_edge: MerkleFrontier | None = None
        self._listeners: list[Callable[[int], None]] = []
        # Set when the run-time integrity check fails: from then on every write is refused.
        self.tampered: str | None = None

    def on_commit(self, listener: Callable[[int], None]) -> None:
        """Call `listener(size)` after each batch that grew the log commits."""
        self._listeners.append(listener)

    # -- batch life cycle -------------------------------------------------------------
    def begin(self, conn: Connection, *, optimistic: bool = False) -> None:
        """Lock the head and load the log's right edge if another process moved it.
        `optimistic`: trust the edge cached from the last batch, without reading or locking
        (the batch's rows then clash with any other writer's, and the transaction fails)."""
        if self.tampered:
            raise DataLoss(f"writes refused: {self.tampered}")
        if optimistic and self._edge is not None:
            return
        size = lock_head(conn)
        if self._edge is None or size != self._edge.size:  # another process appended since: reload the right edge
            try:
                self._edge = MerkleFrontier.load(size, SqlNodeReader(conn))
            except LookupError as exc:
                raise DataLoss(f"audit log altered: the stored tree lacks its right edge at size {size}: {exc}") from exc

    def savepoint(self) -> Any:
        return (self._edge.copy() if self._edge is not None else None, len(self._events), len(self._nodes))

    def rollback_to(self, token: Any) -> None:
        self._edge, n_events, n_nodes = token
        del self._events[n_events:]
        del self._nodes[n_nodes:]

    def before_commit(self, conn: Connection) -> None:
        if self._events:
            write_batch(conn, self._events, self._nodes, self._appending().size)

    def after_commit(self) -> None:
        grew = bool(self._events)
        self._events, self._nodes = [], []
        self.committed_size = self._edge.size if self._edge is not None else 0
        if grew:
            self._committed_edge = self._appending().copy()
            for listener in self._listeners:
                listener(self.committed_size)

    def after_rollback(self) -> None:
        self._events, self._nodes = [], []
        self._edge = None  # reload from the database next time

    def edge_root(self, size: int) -> bytes | None:
        """The root at `size` from the right edge this process computed as it appended (None
        unless the log was at `size` when this process last committed). Stored tree nodes can
        be edited behind its back; these hashes never left its memory."""
        edge = self._committed_edge
        if edge is None or edge.size != size:
            return None
        return edge.root()

    # -- appending ----------------------------------------------------------------------
    def _appending(self) -> MerkleFrontier:
        assert self._edge is not None, "AuditLog used outside a transaction"
        return self._edge

    def get_node(self, level: int, index: int) -> bytes:
        """The log as a NodeReader of its right edge (see `MerkleFrontier.get_node`)."""
        return self._appending().get_node(level, index)

    def append(self, event: Event) -> int:
        """Append `event` to the current batch. Requires being inside a Transactor unit.

        Raises InvalidArgument when a string of the event (details keys and values included)
        holds a lone surrogate: canonical JSON has no form for it (docs/audit-format.md
        §1.1). Nothing is appended then; the unit of work fails alone."""
        assert self._edge is not None, "AuditLog.append outside a transaction"
        edge = self._edge
        seq = edge.size
        time_us = int(self._clock() * 1_000_000)
        details = canonical_details(event.details or {})
        details_json = canonical_json_fast(details)
        policy_ids = tuple(event.policy_ids)
        leaf = encode_leaf_fast(seq, time_us, event.principal, event.action, event.resource, event.decision, policy_ids, details_json)
        if may_hold_surrogate(leaf):  # rare (or Hangul): look at the values themselves
            _refuse_surrogates(event, policy_ids, details)
        lh = leaf_hash(leaf)
        self._events.append(
            {
                "seq": seq, "time_us": time_us, "principal": event.principal, "action": event.action, "resource": event.resource,
                "decision": event.decision, "policy_ids": json.dumps(list(policy_ids)) if policy_ids else "[]", "details": details_json, "leaf": leaf, "leaf_hash": lh,
            }
        )
        for level, idx, h in edge.append_leaf_hash(lh):
            if level >= LOWEST_STORED_LEVEL:
                self._nodes.append({"level": level, "idx": idx, "hash": h})
        return seq


def _refuse_surrogates(event: Event, policy_ids: tuple[str, ...], details: Any) -> None:
    fields = {"principal": event.principal, "action": event.action, "resource": event.resource, "decision": event.decision}
    where = next((name for name, text in fields.items() if find_surrogate(text, name)), None)
    where = where or find_surrogate(list(policy_ids), "policy_ids") or find_surrogate(details, "details")
    if where:
        raise InvalidArgument(f"audit event {where}", "holds a lone surrogate (U+D800..U+DFFF), which is not a character")


"""Appending to the audit log inside the caller's transaction (SQL storage of the Merkle log).

The log head row is locked for the whole batch, so the database assigns dense sequence
numbers even with several replicas; the right edge of the tree (its "frontier", at most one
stored node per bit of the size) is cached, so an append costs O(log n) hashing and no reads.
"""

from __future__ import annotations

import json
import time
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
from privet.governance.audit.merkle import nodes_to_store_on_append, root
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


def frontier_keys(size: int) -> list[tuple[int, int]]:
    """The (level, index) of each stored perfect subtree on the right edge of a tree of `size`."""
    return [(level, (size >> level) - 1) for level in range(size.bit_length()) if size >> level & 1]


class AuditLog:
    """A batch participant of the Transactor; `append` is called by units of work."""

    def __init__(self, clock=time.time) -> None:  # type: ignore[no-untyped-def]
        self._clock = clock
        self._size: int | None = None
        self._frontier: dict[tuple[int, int], bytes] = {}
        self._events: list[dict[str, Any]] = []
        self._nodes: list[dict[str, Any]] = []
        self.committed_size = 0
        # (size, right edge) as of the last commit: the tree as this process appended it.
        self._committed_edge: tuple[int, dict[tuple[int, int], bytes]] | None = None
        self._listeners: list = []
        # Set when the run-time integrity check fails: from then on every write is refused.
        self.tampered: str | None = None

    def on_commit(self, listener) -> None:  # type: ignore[no-untyped-def]
        """Call `listener(size)` after each batch that grew the log commits."""
        self._listeners.append(listener)

    # -- batch life cycle -------------------------------------------------------------
    def begin(self, conn: Connection, *, optimistic: bool = False) -> None:
        """Lock the head and load the log's right edge if another process moved it.
        `optimistic`: trust the edge cached from the last batch, without reading or locking
        (the batch's rows then clash with any other writer's, and the transaction fails)."""
        if self.tampered:
            raise DataLoss(f"writes refused: {self.tampered}")
        if optimistic and self._size is not None:
            return
        size = lock_head(conn)
        if size != self._size:  # another process appended since: reload the right edge
            reader = SqlNodeReader(conn)
            try:
                self._frontier = {key: reader.get_node(*key) for key in frontier_keys(size)}
            except LookupError as exc:
                raise DataLoss(f"audit log altered: the stored tree lacks its right edge at size {size}: {exc}") from exc
            self._size = size

    def savepoint(self) -> Any:
        return (self._size, dict(self._frontier), len(self._events), len(self._nodes))

    def rollback_to(self, token: Any) -> None:
        self._size, self._frontier, n_events, n_nodes = token
        del self._events[n_events:]
        del self._nodes[n_nodes:]

    def before_commit(self, conn: Connection) -> None:
        if self._events:
            write_batch(conn, self._events, self._nodes, self._size)

    def after_commit(self) -> None:
        grew = bool(self._events)
        self._events, self._nodes = [], []
        self.committed_size = self._size or 0
        if grew:
            self._committed_edge = (self.committed_size, dict(self._frontier))
            for listener in self._listeners:
                listener(self.committed_size)

    def after_rollback(self) -> None:
        self._events, self._nodes = [], []
        self._size = None  # reload from the database next time

    def edge_root(self, size: int) -> bytes | None:
        """The root at `size` from the right edge this process computed as it appended (None
        unless the log was at `size` when this process last committed). Stored tree nodes can
        be edited behind its back; these hashes never left its memory."""
        edge = self._committed_edge
        if edge is None or edge[0] != size:
            return None
        return root(size, _EdgeReader(edge[1]))

    # -- appending ----------------------------------------------------------------------
    def get_node(self, level: int, index: int) -> bytes:
        return self._frontier[(level, index)]

    def append(self, event: Event) -> int:
        """Append `event` to the current batch. Requires being inside a Transactor unit.

        Raises InvalidArgument when a string of the event (details keys and values included)
        holds a lone surrogate: canonical JSON has no form for it (docs/audit-format.md
        §1.1). Nothing is appended then; the unit of work fails alone."""
        assert self._size is not None, "AuditLog.append outside a transaction"
        seq = self._size
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
        for level, idx, h in nodes_to_store_on_append(seq, lh, self):
            if level >= LOWEST_STORED_LEVEL:
                self._nodes.append({"level": level, "idx": idx, "hash": h})
            self._frontier[(level, idx)] = h
        self._size = seq + 1
        # The right edge after the append: the new top node (at the level of seq's lowest zero
        # bit) replaces the old edge nodes below it and the path nodes just computed.
        top = (seq ^ (seq + 1)).bit_length() - 1
        for level in range(top):
            self._frontier.pop((level, (seq >> level) - 1), None)
            self._frontier.pop((level, seq >> level), None)
        return seq


def _refuse_surrogates(event: Event, policy_ids: tuple[str, ...], details: Any) -> None:
    fields = {"principal": event.principal, "action": event.action, "resource": event.resource, "decision": event.decision}
    where = next((name for name, text in fields.items() if find_surrogate(text, name)), None)
    where = where or find_surrogate(list(policy_ids), "policy_ids") or find_surrogate(details, "details")
    if where:
        raise InvalidArgument(f"audit event {where}", "holds a lone surrogate (U+D800..U+DFFF), which is not a character")


class _EdgeReader:
    """A NodeReader over a right edge (KeyError, a LookupError, for any other node)."""

    def __init__(self, edge: dict[tuple[int, int], bytes]) -> None:
        self._edge = edge

    def get_node(self, level: int, index: int) -> bytes:
        return self._edge[(level, index)]

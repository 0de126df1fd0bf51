"""Run-time tamper detection: recompute the stored log from the events table.

Catches a row edited, deleted, inserted or reordered behind Privet's back: every row's fields
must re-encode to its stored leaf bytes, sequence numbers must be dense, the recomputed tree
must reproduce every signed checkpoint and the stored tree head.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from governance.audit.checkpoint import NoteVerifier, open_checkpoint
from governance.audit.hashing import leaf_hash
from governance.audit.leaf import encode_leaf
from governance.audit.merkle import MerkleFrontier, root
from governance.audit.storage import SqlNodeReader, head_size, iter_events, record_of
from governance.errors import DataLoss
from governance.store.tables import AuditCheckpoint

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


def check_log(session: Session, verifier: NoteVerifier) -> IntegrityReport:
    size = head_size(session)
    checkpoints = list(session.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.size)).scalars())
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
    pending = iter(signed)
    nxt = next(pending, None)
    while nxt is not None and nxt[0] == 0:
        nxt = next(pending, None)
    expected = 0
    for row in iter_events(session):
        if row.seq != expected:
            return _bad(expected, size, "missing (deleted or renumbered)" if row.seq > expected else "out of order")
        leaf = encode_leaf(record_of(row))
        if leaf != row.leaf:
            return _bad(row.seq, size, "its fields do not match its leaf bytes (edited)")
        if leaf_hash(leaf) != row.leaf_hash:
            return _bad(row.seq, size, "its leaf hash was changed")
        frontier.append(leaf)
        expected += 1
        while nxt is not None and nxt[0] == expected:
            if frontier.root() != nxt[1]:
                return _bad(None, size, f"events before {expected} do not reproduce the signed checkpoint at size {expected}")
            nxt = next(pending, None)
    if expected != size:
        return _bad(expected, size, f"the head says {size} events but {expected} are stored")
    if nxt is not None:
        return _bad(None, size, f"a signed checkpoint at size {nxt[0]} is beyond the stored log")
    if size and root(size, SqlNodeReader(session)) != frontier.root():
        return _bad(None, size, "the stored tree nodes do not match the events")
    return IntegrityReport(True, size, f"audit log intact: {size} events, {len(signed)} signed checkpoints reproduced")

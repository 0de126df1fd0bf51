"""Signed tree heads: one at least every N events or T seconds, and on demand."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from privet.governance.audit.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from privet.governance.audit.log import AuditLog
from privet.governance.audit.merkle import root
from privet.governance.audit.storage import SqlNodeReader, head_size, latest_checkpoint, table_of
from privet.governance.errors import DataLoss
from privet.governance.store.engine import Engines
from privet.governance.store.tables import AuditCheckpoint

__all__ = ["Checkpointer"]

log = logging.getLogger("privet.audit")


class Checkpointer:
    def __init__(self, engines: Engines, signer: NoteSigner, origin: str, *, every_events: int, every_seconds: float,
                 clock: Callable[[], float] = time.time, audit_log: AuditLog | None = None) -> None:
        """Requires `signer`'s key name to be `origin` (C2SP: a log's key is named after its
        origin, and auditors refuse a checkpoint whose origin is not the key's name); raises
        ValueError otherwise, so a mismatched home stops at start, not at its first audit."""
        if signer.name != origin:
            raise ValueError(
                f"the audit key (keys/audit.key) is named {signer.name!r} but [audit] origin is {origin!r}: a log's key "
                f"name must be its origin: set origin = \"{signer.name}\" in privet.toml, or make a key named {origin!r} and give "
                "auditors its audit.pub (docs/audit-format.md §3)"
            )
        self._engines = engines
        self._log = audit_log  # this process's own appends: a root it can check the stored tree against
        self._signer = signer
        self._origin = origin
        self._every_events = every_events
        self._every_seconds = every_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_size = -1
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="privet-checkpointer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def notify(self, size: int) -> None:
        """Called after each commit that grew the log."""
        if size - max(self._last_size, 0) >= self._every_events:
            self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._every_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.checkpoint_now()
            except Exception:
                log.exception("checkpoint failed")

    def _root_to_sign(self, size: int, session: Session) -> bytes:
        """The stored tree's root at `size`, refused (and the log frozen) when it is not the
        root this process computed as it appended: signing it would vouch for a tree head
        that the events do not give."""
        stored = root(size, SqlNodeReader(session))
        audit_log = self._log
        own = audit_log.edge_root(size) if audit_log is not None else None
        if audit_log is not None and own is not None and own != stored:
            message = f"audit log altered: the stored tree's root at size {size} is not the one this process appended"
            log.error("%s; refusing writes (DATA_LOSS) and signing nothing until an operator investigates", message)
            audit_log.tampered = message
            raise DataLoss(message)
        return stored

    def checkpoint_now(self) -> AuditCheckpoint:
        """Sign the current tree head (or return the stored one if the log has not grown)."""
        with self._lock, Session(self._engines.writer, expire_on_commit=False) as session, session.begin():
            size = head_size(session)
            existing = latest_checkpoint(session)
            if existing is not None and existing.size == size:
                self._last_size = size
                return existing
            head = Checkpoint(self._origin, size, self._root_to_sign(size, session))
            row = AuditCheckpoint(size=size, root_hash=head.root_hash, note=sign_checkpoint(head, self._signer), time_us=int(self._clock() * 1e6), key_id=self._signer.name)
            values = row.model_dump()
            # Several replicas may sign the same size at once: identical content, keep the first.
            dialect = sqlite if self._engines.sqlite else postgresql
            session.execute(dialect.insert(table_of(AuditCheckpoint)).values(**values).on_conflict_do_nothing(index_elements=["size"]))
            self._last_size = size
            return session.get(AuditCheckpoint, size) or row

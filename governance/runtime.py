"""The composition root of one Privet process: settings, database, audit log, policies, blobs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlmodel import Session

from governance.audit.log import AuditLog, Event
from governance.config import Home, Settings
from governance.policy.holder import PolicyHolder
from governance.store import schema
from governance.store.blobs import BlobStore
from governance.store.engine import Engines, make_engines
from governance.store.transactor import Transactor

__all__ = ["Runtime"]

T = TypeVar("T")


@dataclass
class Runtime:
    home: Home
    settings: Settings
    engines: Engines
    audit: AuditLog
    transactor: Transactor
    policies: PolicyHolder
    blobs: BlobStore

    @classmethod
    def open(cls, home: Home) -> "Runtime":
        """Migrate the database, load and validate policies, sweep orphan blobs."""
        settings = home.settings()
        policies = PolicyHolder(home.policies)  # a bad policy stops the process here
        engines = make_engines(settings.database_url)
        schema.upgrade(engines.writer)
        audit = AuditLog()
        transactor = Transactor(engines, (audit,))
        blobs = BlobStore(settings.blob_dir)
        blobs.sweep_orphans()
        return cls(home, settings, engines, audit, transactor, policies, blobs)

    def write(self, fn: Callable[[Session], T], timeout: float | None = None) -> T:
        """Run `fn(session)` in a group-committed transaction; returns once durable."""
        return self.transactor.run(fn, timeout)

    def record(self, event: Event, timeout: float | None = None) -> int:
        """Append one event on its own (a denial, a read). Returns its sequence number."""
        return self.transactor.run(lambda _s: self.audit.append(event), timeout)

    def read(self) -> Session:
        return Session(self.engines.reader, expire_on_commit=False)

    def close(self) -> None:
        self.transactor.close()
        self.engines.dispose()

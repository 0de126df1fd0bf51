"""The composition root of one Privet process: settings, database, audit log, policies, blobs."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlmodel import Session

from privet.governance.audit.checkpoint import NoteSigner, NoteVerifier
from privet.governance.audit.checkpointer import Checkpointer
from privet.governance.audit.denials import DenialLog
from privet.governance.audit.integrity import IntegrityReport, check_log
from privet.governance.audit.log import AuditLog, Event
from privet.governance.config import Home, Settings
from privet.governance.policy.holder import PolicyHolder
from privet.governance.store import schema
from privet.governance.store.blobs import BlobStore
from privet.governance.store.engine import Engines, make_engines
from privet.governance.store.transactor import Transactor

__all__ = ["Runtime"]

T = TypeVar("T")

log = logging.getLogger("privet.runtime")
_LAZY = threading.Lock()  # makes each runtime's coalescing logs once, on first use


@dataclass
class Runtime:
    home: Home
    settings: Settings
    engines: Engines
    audit: AuditLog
    transactor: Transactor
    policies: PolicyHolder
    blobs: BlobStore
    checkpointer: Checkpointer
    verifier: NoteVerifier
    _ca_pem: bytes | None = None
    _denials: DenialLog | None = None
    _reads: DenialLog | None = None

    @classmethod
    def open(cls, home: Home) -> Runtime:
        """Migrate the database, load and validate policies, sweep orphan blobs."""
        # Owner-only: keys, the database and blobs are secrets. Every file this process makes
        # is created so (umask), and the home itself closes to others whatever made it.
        os.umask(0o077)
        os.chmod(home.root, 0o700)
        settings = home.settings()
        policies = PolicyHolder(home.policies)  # a bad policy stops the process here
        engines = make_engines(settings.database_url)
        schema.upgrade(engines.writer)
        audit = AuditLog()
        transactor = Transactor(engines, (audit,))
        blobs = BlobStore(settings.blob_dir)
        blobs.sweep_orphans()
        signer = NoteSigner.from_text((home.keys / "audit.key").read_text().strip())
        checkpointer = Checkpointer(engines, signer, settings.audit_origin, every_events=settings.checkpoint_every_events,
                                    every_seconds=settings.checkpoint_every_seconds, audit_log=audit)
        audit.on_commit(checkpointer.notify)
        runtime = cls(home, settings, engines, audit, transactor, policies, blobs, checkpointer, signer.verifier)
        runtime.check_audit_log()
        return runtime

    def check_audit_log(self) -> IntegrityReport:
        """Recompute the stored log; if it was altered, refuse every write from now on."""
        with self.read() as session:
            report = check_log(session, self.verifier)
        if report.ok:
            log.info(report.message)
        else:
            log.error("%s; refusing writes (DATA_LOSS) until an operator investigates", report.message)
            self.audit.tampered = report.message
        return report

    @property
    def ca_pem(self) -> bytes:
        """The home's CA certificate: the only issuer whose leaves identify callers."""
        if self._ca_pem is None:
            self._ca_pem = self.home.ca_cert.read_bytes()
        return self._ca_pem

    def write(self, fn: Callable[[Session], T], timeout: float | None = None) -> T:
        """Run `fn(session)` in a group-committed transaction; returns once durable."""
        return self.transactor.run(fn, timeout)

    def record(self, event: Event, timeout: float | None = None) -> int:
        """Append one event on its own (a denial, a read). Returns its sequence number."""
        return self.transactor.run(lambda _s: self.audit.append(event), timeout, isolated=False)

    def deny(self, event: Event) -> None:
        """Record a denial, identical repeats coalesced into counted events (governance/audit/denials.py)."""
        with _LAZY:
            if self._denials is None:
                self._denials = DenialLog(self)
        self._denials.record(event)

    def count_read(self, event: Event) -> None:
        """Record a read, counted with identical ones into one event a second (never an fsync per call)."""
        with _LAZY:
            if self._reads is None:
                self._reads = DenialLog(self, immediate_first=False)
        self._reads.record(event)

    def scrub(self) -> bool:
        """After an erasure, leave no copy of the erased bytes in the database's files
        (SQLite: a truncating checkpoint; see Engines.scrub)."""
        return self.engines.scrub()

    def read(self) -> Session:
        return Session(self.engines.reader, expire_on_commit=False)

    def close(self) -> None:
        for coalesced in (self._denials, self._reads):
            if coalesced is not None:
                coalesced.close()
        self.checkpointer.stop()
        self.transactor.close()
        self.engines.dispose()

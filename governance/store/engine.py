"""Database engines: SQLite (WAL, synchronous=FULL, foreign keys) or PostgreSQL by URL.

SQLite writes take the lock up front (BEGIN IMMEDIATE) so that two writers never deadlock on a
lock upgrade; reads use a separate engine with ordinary deferred transactions so they never
wait for a writer under WAL.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event

__all__ = ["Engines", "make_engines", "normalise_url", "is_sqlite"]


def normalise_url(url: str) -> str:
    """Accept plain postgresql:// URLs and use the psycopg 3 driver for them."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain):]
    return url


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


@dataclass(frozen=True)
class Engines:
    url: str
    writer: Engine
    reader: Engine

    @property
    def sqlite(self) -> bool:
        return is_sqlite(self.url)

    def scrub(self, attempts: int = 20) -> bool:
        """After an erasure: leave no copy of erased bytes in the database's files. SQLite
        overwrites freed content (secure_delete) but keeps old page images in the WAL until
        a checkpoint; a TRUNCATE checkpoint copies the current pages back and empties the
        WAL. A reader holding an old snapshot blocks it, so it is retried briefly. Returns
        whether the WAL was emptied. PostgreSQL: nothing can be guaranteed here (dead tuples,
        WAL segments and backups keep old rows): see docs/operators.md, "Erasure"."""
        if not self.sqlite:
            return False
        import time

        # A connection of its own, outside the pools: theirs begin a transaction on checkout,
        # and a checkpoint cannot run inside one.
        conn = sqlite3.connect(self.url.split(":///", 1)[1], isolation_level=None, timeout=30)
        try:
            conn.execute("PRAGMA secure_delete=ON")
            for _ in range(attempts):
                busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if not busy:
                    return True
                time.sleep(0.05)
            return False
        finally:
            conn.close()

    def dispose(self) -> None:
        self.writer.dispose()
        self.reader.dispose()


SQLITE_PAGE_SIZE = 2048


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=16, max_overflow=32)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see below)
        cur = dbapi_conn.cursor()
        # A new database only (an existing one keeps its page size). Every commit writes each
        # page it touched to the WAL whole, and an audit batch touches one index page per
        # distinct principal and resource in it: 2 KiB pages halve those bytes. Measured with
        # 16 writers: 11-14 k appends/s at 4 KiB, 16-17 k at 2 KiB (docs/benchmarks.md).
        cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        # Deleted or overwritten content is zeroed in the file, not just unlinked from the
        # b-tree: an erased key must not survive in a free page (see Engines.scrub).
        cur.execute("PRAGMA secure_delete=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Straight to the driver: SQLAlchemy's statement machinery costs more than the BEGIN,
        # and the group committer pays it once per batch on its critical path.
        driver: Any = conn.connection.driver_connection  # the DBAPI's own connection: untyped
        driver.execute(begin)

    return engine


def _owner_only(url: str) -> None:
    """Create the SQLite file owner-only (its WAL and shared-memory files take its mode)."""
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if not path or path == ":memory:":
        return
    import os

    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def make_engines(url: str) -> Engines:
    url = normalise_url(url)
    if is_sqlite(url):
        _owner_only(url)
        return Engines(url, _sqlite_engine(url, immediate=True), _sqlite_engine(url, immediate=False))
    engine = create_engine(url, pool_pre_ping=True, pool_size=16, max_overflow=32)
    return Engines(url, engine, engine)

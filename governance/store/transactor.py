"""Group commit: many callers' writes, one transaction and one fsync per batch.

Each unit of work runs inside its own SAVEPOINT of a shared transaction, so one failing unit
rolls back alone; the batch commits once, and only then is any caller told it succeeded. A
change and the audit event describing it are written by the same unit, hence in the same
transaction. Participants (the audit log) hook into the batch's life cycle.

The hand-offs between callers and the writer thread (who waits on what, when the writer
wakes) are `_batching`'s: tuned for the commit path, and apart so that this module reads as
the rule.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

from psycopg.pq import TransactionStatus
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from privet.governance.errors import Unavailable
from privet.governance.store._batching import STOP, Inbox, Waiter, wake_chain, wake_rest
from privet.governance.store.engine import Engines

__all__ = ["BatchParticipant", "Transactor"]

T = TypeVar("T")


class BatchParticipant(Protocol):
    def begin(self, conn: Connection, *, optimistic: bool = False) -> None: ...
    def savepoint(self) -> Any: ...
    def rollback_to(self, token: Any) -> None: ...
    def before_commit(self, conn: Connection) -> None: ...
    def after_commit(self) -> None: ...
    def after_rollback(self) -> None: ...


# A unit of work, what its caller waits on, and whether it runs in its own SAVEPOINT.
_Unit = tuple[Callable[[Session | None], Any], "Future[Any] | Waiter", bool]


class Transactor:
    """Runs units of work `fn(session) -> T` in batched transactions on one writer thread."""

    GATHER_SECONDS = 0.0005

    def __init__(self, engines: Engines, participants: tuple[BatchParticipant, ...] = (), *, max_batch: int = 256) -> None:
        self._engines = engines
        # Participants may talk to the driver directly (the audit log's append SQL): its own
        # errors are the database's as much as SQLAlchemy's wrappers are.
        dbapi = engines.writer.dialect.loaded_dbapi
        self._database_errors = (OperationalError, DBAPIError, dbapi.Error)
        self._conflicts = (dbapi.IntegrityError,)
        self._participants = participants
        self._max_batch = max_batch
        self._conn: Connection | None = None
        self._inbox = Inbox()
        self._thread = threading.Thread(target=self._loop, name="privet-transactor", daemon=True)
        self._thread.start()

    def run(self, fn: Callable[[Session], T], timeout: float | None = None, *, isolated: bool = True) -> T:
        """Run `fn` in a batch and return its result once the batch is durable."""
        waiter = Waiter()
        self._inbox.put((fn, waiter, isolated))
        result: T = waiter.result(timeout)
        return result

    def submit(self, fn: Callable[[Session], T], *, isolated: bool = True) -> Future[T]:
        """`isolated=False` skips the unit's SAVEPOINT and ORM session (`fn` gets None): only for
        units that touch no table themselves (pure audit appends, buffered by the participants)."""
        future: Future[T] = Future()
        self._inbox.put((fn, future, isolated))
        return future

    def close(self) -> None:
        self._inbox.put(STOP)
        self._thread.join(timeout=30)
        if self._conn is not None:
            self._conn.close()

    def _loop(self) -> None:
        last_size = 1
        woken: list[Waiter] = []
        while True:
            # Under concurrency, callers just woken by the previous commit are still on their way
            # back with their next unit: give them a moment (bounded) to join this batch.
            taken = self._inbox.take(last_size, self.GATHER_SECONDS if last_size > 1 else 0.0, self._max_batch,
                                     functools.partial(wake_rest, woken))
            wake_rest(woken)  # by now the chain has run its course, unless a caller broke it
            stop = STOP in taken
            batch: list[_Unit] = taken[:taken.index(STOP)] if stop else taken
            woken = self._run_batch(batch) if batch else []
            if batch:
                last_size = len(batch)
            if stop:
                wake_rest(woken)
                return

    def _run_batch(self, batch: list[_Unit]) -> list[Waiter]:
        """Run and commit one batch; returns the waiters it woke (in a chain)."""
        # On PostgreSQL a batch of bare units (pure audit appends) is optimistic: the
        # participant trusts what it cached from the last batch instead of reading it under a
        # lock, and its write is one statement, one round trip, instead of three (the locking
        # read, the write, COMMIT). If another replica moved on meanwhile, the write clashes
        # with its rows (primary keys), the database undoes it, and the batch runs again,
        # pessimistically. (One participant: its single statement is the whole transaction.)
        optimistic = (not self._engines.sqlite and len(self._participants) == 1
                      and not any(isolated for _, _, isolated in batch))
        try:
            try:
                outcomes = self._attempt(batch, optimistic)
            except self._conflicts:
                if not optimistic:
                    raise
                self._after_rollback()  # another writer moved the log on: read it, under the lock
                outcomes = self._attempt(batch, optimistic=False)
        except BaseException as exc:
            self._fail_all(batch, self._as_failure(exc))
            return []
        for p in self._participants:
            p.after_commit()
        waiters = []
        for (ok, value), (_, future, _) in zip(outcomes, batch):
            if isinstance(future, Waiter):
                future.settle(ok, value)
                waiters.append(future)
            elif ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        wake_chain(waiters)
        return waiters

    def _attempt(self, batch: list[_Unit], optimistic: bool) -> list[tuple[bool, Any]]:
        """Run every unit and commit; raises if the batch as a whole failed."""
        outcomes: list[tuple[bool, Any]] = []
        session: Session | None = None
        conn = self._connection()
        try:
            with conn.begin():
                for p in self._participants:
                    p.begin(conn, optimistic=optimistic)
                for fn, _, isolated in batch:
                    if isolated and session is None:  # the ORM only when a unit uses it
                        session = Session(bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint")
                    outcomes.append(self._run_unit(session, fn) if session is not None and isolated else self._run_bare_unit(fn))
                if session is not None:
                    session.flush()
                driver: Any = conn.connection.driver_connection  # the DBAPI's own connection: untyped
                if optimistic and driver.info.transaction_status == TransactionStatus.IDLE:
                    # Nothing sent yet (bare units and a participant that trusted its cache): the
                    # participant's one statement can be a transaction on its own, with no BEGIN
                    # or COMMIT to wait for.
                    driver.autocommit = True
                    try:
                        self._participants[0].before_commit(conn)
                    finally:
                        driver.autocommit = False  # the context's own commit finds nothing to do
                else:
                    for p in self._participants:
                        p.before_commit(conn)
        finally:
            if session is not None:
                session.close()
        return outcomes

    def _as_failure(self, exc: BaseException) -> BaseException:
        """What callers hear: a driver error is the database being unavailable (and the
        connection is replaced); anything else as it was raised."""
        if isinstance(exc, self._database_errors):
            self._drop_connection()
            return Unavailable(f"database unavailable: {type(getattr(exc, 'orig', exc)).__name__}")
        return exc

    def _connection(self) -> Connection:
        """The writer thread keeps one connection: a pool checkout (and its ping) per batch
        costs more than the batch's own statements."""
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self._engines.writer.connect()
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:
                pass
            self._conn = None

    def _run_bare_unit(self, fn: Callable[[Session | None], Any]) -> tuple[bool, Any]:
        tokens = [p.savepoint() for p in self._participants]
        try:
            return True, fn(None)
        except Exception as exc:
            self._rollback_participants(tokens)
            return False, exc

    def _run_unit(self, session: Session, fn: Callable[[Session | None], Any]) -> tuple[bool, Any]:
        tokens = [p.savepoint() for p in self._participants]
        nested = session.begin_nested()
        try:
            value = fn(session)
            session.flush()
            nested.commit()
            # The batch's units share one session: without this, a later unit that loads the
            # same row changes the very object an earlier unit returned to its caller.
            session.expunge_all()
            return True, value
        except OperationalError as exc:
            raise exc  # the connection itself failed: the whole batch fails
        except Exception as exc:
            if nested.is_active:
                nested.rollback()
            self._rollback_participants(tokens)
            return False, exc

    def _rollback_participants(self, tokens: list[Any]) -> None:
        for p, token in zip(self._participants, tokens):
            p.rollback_to(token)

    def _after_rollback(self) -> None:
        for p in self._participants:
            p.after_rollback()

    def _fail_all(self, batch: list[_Unit], exc: BaseException) -> None:
        self._after_rollback()
        for _, future, _ in batch:
            if not future.done():
                future.set_exception(exc)

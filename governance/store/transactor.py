"""Group commit: many callers' writes, one transaction and one fsync per batch.

Each unit of work runs inside its own SAVEPOINT of a shared transaction, so one failing unit
rolls back alone; the batch commits once, and only then is any caller told it succeeded. A
change and the audit event describing it are written by the same unit, hence in the same
transaction. Participants (the audit log) hook into the batch's life cycle.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

from psycopg.pq import TransactionStatus
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from privet.governance.errors import Unavailable
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


_STOP = object()


class _Waiter:
    """What `run` blocks on: the part of a Future the committer uses, on one bare lock. A
    caller wakes per event, so this hand-off is on the hot path; a Future's condition
    variable costs several times as much on both sides.

    A committed batch's waiters are woken in a chain (`_wake_chain`): the committer wakes the
    first, each caller wakes the next as it resumes. Woken all at once, sixteen threads would
    queue for the GIL the committer still holds, each paying a context switch for nothing.
    A caller that stopped waiting (a timeout) breaks the chain; the committer wakes whoever
    is still asleep before it sleeps itself (`_wake_rest`)."""

    __slots__ = ("_lock", "_ok", "_value", "_next")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._ok = False
        self._value: Any = None
        self._next: _Waiter | None = None

    def done(self) -> bool:
        return not self._lock.locked()

    def set_result(self, value: Any) -> None:
        self._ok, self._value = True, value
        self._lock.release()

    def set_exception(self, exc: BaseException) -> None:
        self._value = exc
        self._lock.release()

    def _release(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:  # the committer's late wake and the chain's crossed: already open
            pass

    def result(self, timeout: float | None = None) -> Any:
        if not self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            raise TimeoutError("the batch holding this unit did not commit in time")
        following, self._next = self._next, None
        if following is not None:
            following._release()
        self._release()  # stays done for any later look
        if self._ok:
            return self._value
        raise self._value


def _wake_chain(waiters: list[_Waiter]) -> None:
    """Outcomes already set: open the first; each opens the next as it resumes."""
    for waiter, following in zip(waiters, waiters[1:]):
        waiter._next = following
    if waiters:
        waiters[0]._release()


def _wake_rest(waiters: list[_Waiter]) -> None:
    for waiter in waiters:
        if waiter._lock.locked():
            waiter._release()


class _Inbox:
    """The units waiting for the committer. Unlike a queue, it wakes the committer once per
    batch, when as many units as it asked for have arrived, not once per unit: under
    concurrency every wake-up is a context switch and a GIL hand-off on the hot path."""

    IDLE_SECONDS = 0.002

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._guard = threading.Lock()
        self._bell = threading.Lock()  # held while the committer has nothing to do
        self._bell.acquire()
        self._want = 1

    def put(self, item: Any) -> None:
        with self._guard:
            self._items.append(item)
            if (len(self._items) >= self._want or item is _STOP) and self._bell.locked():
                self._bell.release()

    def take(self, want: int, wait: float, limit: int, before_sleeping: Callable[[], None]) -> list[Any]:
        """At least one unit (blocking until there is one), and up to `want` if they arrive
        within `wait` seconds; never more than `limit`. `before_sleeping` runs when nothing
        has come for IDLE_SECONDS, before blocking indefinitely."""
        with self._guard:
            self._want = 1
            ready = len(self._items) >= 1
        if not ready and not self._bell.acquire(timeout=self.IDLE_SECONDS):
            before_sleeping()
            self._bell.acquire()
        with self._guard:
            self._want = want
            ready = len(self._items) >= want or _STOP in self._items
            self._bell.acquire(blocking=False)  # whatever rang it has been seen
        if not ready and wait > 0:
            self._bell.acquire(timeout=wait)
        with self._guard:
            self._want = 1 << 62  # no bell while the batch runs: the next take looks first
            self._bell.acquire(blocking=False)
            n = min(len(self._items), limit)
            return [self._items.popleft() for _ in range(n)]


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
        self._conn = None
        self._inbox = _Inbox()
        self._thread = threading.Thread(target=self._loop, name="privet-transactor", daemon=True)
        self._thread.start()

    def run(self, fn: Callable[[Session], T], timeout: float | None = None, *, isolated: bool = True) -> T:
        """Run `fn` in a batch and return its result once the batch is durable."""
        waiter = _Waiter()
        self._inbox.put((fn, waiter, isolated))
        return waiter.result(timeout)

    def submit(self, fn: Callable[[Session], T], *, isolated: bool = True) -> Future[T]:
        """`isolated=False` skips the unit's SAVEPOINT and ORM session (`fn` gets None): only for
        units that touch no table themselves (pure audit appends, buffered by the participants)."""
        future: Future[T] = Future()
        self._inbox.put((fn, future, isolated))
        return future

    def close(self) -> None:
        self._inbox.put(_STOP)
        self._thread.join(timeout=30)
        if self._conn is not None:
            self._conn.close()

    def _loop(self) -> None:
        last_size = 1
        woken: list[_Waiter] = []
        while True:
            # Under concurrency, callers just woken by the previous commit are still on their way
            # back with their next unit: give them a moment (bounded) to join this batch.
            batch = self._inbox.take(last_size, self.GATHER_SECONDS if last_size > 1 else 0.0, self._max_batch,
                                     lambda woken=woken: _wake_rest(woken))
            _wake_rest(woken)  # by now the chain has run its course, unless a caller broke it
            stop = _STOP in batch
            if stop:
                batch = batch[:batch.index(_STOP)]
            woken = self._run_batch(batch) if batch else []
            if batch:
                last_size = len(batch)
            if stop:
                _wake_rest(woken)
                return

    def _run_batch(self, batch: list[tuple[Callable[[Session], Any], Future | _Waiter, bool]]) -> list[_Waiter]:
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
            if type(future) is _Waiter:
                future._ok, future._value = ok, value
                waiters.append(future)
            elif ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        _wake_chain(waiters)
        return waiters

    def _attempt(self, batch: list[tuple[Callable[[Session], Any], Future | _Waiter, bool]],
                 optimistic: bool) -> list[tuple[bool, Any]]:
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
                    outcomes.append(self._run_unit(session, fn) if isolated else self._run_bare_unit(fn))
                if session is not None:
                    session.flush()
                driver = conn.connection.driver_connection
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

    def _connection(self):  # type: ignore[no-untyped-def]
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

    def _run_bare_unit(self, fn: Callable[[Session], Any]) -> tuple[bool, Any]:
        tokens = [p.savepoint() for p in self._participants]
        try:
            return True, fn(None)  # type: ignore[arg-type]
        except Exception as exc:
            self._rollback_participants(tokens)
            return False, exc

    def _run_unit(self, session: Session, fn: Callable[[Session], Any]) -> tuple[bool, Any]:
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

    def _fail_all(self, batch: list[tuple[Callable, Future | _Waiter, bool]], exc: BaseException) -> None:
        self._after_rollback()
        for _, future, _ in batch:
            if not future.done():
                future.set_exception(exc)

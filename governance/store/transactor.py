"""Group commit: many callers' writes, one transaction and one fsync per batch.

Each unit of work runs inside its own SAVEPOINT of a shared transaction, so one failing unit
rolls back alone; the batch commits once, and only then is any caller told it succeeded. A
change and the audit event describing it are written by the same unit, hence in the same
transaction. Participants (the audit log) hook into the batch's life cycle.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from governance.errors import Unavailable
from governance.store.engine import Engines

__all__ = ["BatchParticipant", "Transactor"]

T = TypeVar("T")


class BatchParticipant(Protocol):
    def begin(self, conn: Connection) -> None: ...
    def savepoint(self) -> Any: ...
    def rollback_to(self, token: Any) -> None: ...
    def before_commit(self, conn: Connection) -> None: ...
    def after_commit(self) -> None: ...
    def after_rollback(self) -> None: ...


_STOP = object()


class _Waiter:
    """What `run` blocks on: the part of a Future the committer uses, on one bare lock. A
    caller wakes per event, so this hand-off is on the hot path; a Future's condition
    variable costs several times as much on both sides."""

    __slots__ = ("_lock", "_ok", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._ok = False
        self._value: Any = None

    def done(self) -> bool:
        return not self._lock.locked()

    def set_result(self, value: Any) -> None:
        self._ok, self._value = True, value
        self._lock.release()

    def set_exception(self, exc: BaseException) -> None:
        self._value = exc
        self._lock.release()

    def result(self, timeout: float | None = None) -> Any:
        if not self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            raise TimeoutError("the batch holding this unit did not commit in time")
        self._lock.release()  # stays done for any later look
        if self._ok:
            return self._value
        raise self._value


class Transactor:
    """Runs units of work `fn(session) -> T` in batched transactions on one writer thread."""

    GATHER_SECONDS = 0.0005

    def __init__(self, engines: Engines, participants: tuple[BatchParticipant, ...] = (), *, max_batch: int = 256) -> None:
        self._engines = engines
        # Participants may talk to the driver directly (the audit log's append SQL): its own
        # errors are the database's as much as SQLAlchemy's wrappers are.
        self._database_errors = (OperationalError, DBAPIError, engines.writer.dialect.loaded_dbapi.Error)
        self._participants = participants
        self._max_batch = max_batch
        self._conn = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="privet-transactor", daemon=True)
        self._thread.start()

    def run(self, fn: Callable[[Session], T], timeout: float | None = None, *, isolated: bool = True) -> T:
        """Run `fn` in a batch and return its result once the batch is durable."""
        waiter = _Waiter()
        self._queue.put((fn, waiter, isolated))
        return waiter.result(timeout)

    def submit(self, fn: Callable[[Session], T], *, isolated: bool = True) -> "Future[T]":
        """`isolated=False` skips the unit's SAVEPOINT and ORM session (`fn` gets None): only for
        units that touch no table themselves (pure audit appends, buffered by the participants)."""
        future: Future[T] = Future()
        self._queue.put((fn, future, isolated))
        return future

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=30)
        if self._conn is not None:
            self._conn.close()

    def _loop(self) -> None:
        last_size = 1
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            # Under concurrency, callers just woken by the previous commit are still on their way
            # back with their next unit: give them a moment (bounded) to join this batch.
            window_end = time.monotonic() + (self.GATHER_SECONDS if last_size > 1 else 0.0)
            while len(batch) < self._max_batch:
                try:
                    remaining = window_end - time.monotonic()
                    item = self._queue.get(timeout=remaining) if remaining > 0 and len(batch) < last_size else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            last_size = len(batch)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[tuple[Callable[[Session], Any], Future | _Waiter, bool]]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        session: Session | None = None
        try:
            conn = self._connection()
            with conn.begin():
                for p in self._participants:
                    p.begin(conn)
                for fn, _, isolated in batch:
                    if isolated and session is None:  # the ORM only when a unit uses it
                        session = Session(bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint")
                    outcomes.append(self._run_unit(session, fn) if isolated else self._run_bare_unit(fn))
                if session is not None:
                    session.flush()
                for p in self._participants:
                    p.before_commit(conn)
        except self._database_errors as exc:
            self._drop_connection()
            self._fail_all(batch, Unavailable(f"database unavailable: {type(getattr(exc, 'orig', exc)).__name__}"))
            return
        except BaseException as exc:  # noqa: BLE001 - every caller must hear about it
            self._fail_all(batch, exc)
            return
        finally:
            if session is not None:
                session.close()
        for p in self._participants:
            p.after_commit()
        for (ok, value), (_, future, _) in zip(outcomes, batch):
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

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
            except Exception:  # noqa: BLE001 - it is already broken
                pass
            self._conn = None

    def _run_bare_unit(self, fn: Callable[[Session], Any]) -> tuple[bool, Any]:
        tokens = [p.savepoint() for p in self._participants]
        try:
            return True, fn(None)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - this unit alone is undone
            self._rollback_participants(tokens)
            return False, exc

    def _run_unit(self, session: Session, fn: Callable[[Session], Any]) -> tuple[bool, Any]:
        tokens = [p.savepoint() for p in self._participants]
        nested = session.begin_nested()
        try:
            value = fn(session)
            session.flush()
            nested.commit()
            return True, value
        except (OperationalError,) as exc:
            raise exc  # the connection itself failed: the whole batch fails
        except Exception as exc:  # noqa: BLE001 - this unit alone is rolled back
            if nested.is_active:
                nested.rollback()
            self._rollback_participants(tokens)
            return False, exc

    def _rollback_participants(self, tokens: list[Any]) -> None:
        for p, token in zip(self._participants, tokens):
            p.rollback_to(token)

    def _fail_all(self, batch: list[tuple[Callable, Future | _Waiter, bool]], exc: BaseException) -> None:
        for p in self._participants:
            p.after_rollback()
        for _, future, _ in batch:
            if not future.done():
                future.set_exception(exc)

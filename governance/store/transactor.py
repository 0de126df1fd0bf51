"""Group commit: many callers' writes, one transaction and one fsync per batch.

Each unit of work runs inside its own SAVEPOINT of a shared transaction, so one failing unit
rolls back alone; the batch commits once, and only then is any caller told it succeeded. A
change and the audit event describing it are written by the same unit, hence in the same
transaction. Participants (the audit log) hook into the batch's life cycle.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from governance.errors import Unavailable
from governance.store.engine import Engines

__all__ = ["BatchParticipant", "Transactor"]

T = TypeVar("T")


class BatchParticipant(Protocol):
    def begin(self, session: Session) -> None: ...
    def savepoint(self) -> Any: ...
    def rollback_to(self, token: Any) -> None: ...
    def before_commit(self, session: Session) -> None: ...
    def after_commit(self) -> None: ...
    def after_rollback(self) -> None: ...


_STOP = object()


class Transactor:
    """Runs units of work `fn(session) -> T` in batched transactions on one writer thread."""

    def __init__(self, engines: Engines, participants: tuple[BatchParticipant, ...] = (), *, max_batch: int = 256) -> None:
        self._engines = engines
        self._participants = participants
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="privet-transactor", daemon=True)
        self._thread.start()

    def run(self, fn: Callable[[Session], T], timeout: float | None = None) -> T:
        """Run `fn` in a batch and return its result once the batch is durable."""
        return self.submit(fn).result(timeout)

    def submit(self, fn: Callable[[Session], T]) -> "Future[T]":
        future: Future[T] = Future()
        self._queue.put((fn, future))
        return future

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[tuple[Callable[[Session], Any], Future]]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            with Session(self._engines.writer, expire_on_commit=False) as session:
                with session.begin():
                    for p in self._participants:
                        p.begin(session)
                    for fn, _ in batch:
                        outcomes.append(self._run_unit(session, fn))
                    for p in self._participants:
                        p.before_commit(session)
        except (OperationalError, DBAPIError) as exc:
            self._fail_all(batch, Unavailable(f"database unavailable: {type(exc.orig).__name__ if hasattr(exc, 'orig') else exc}"))
            return
        except BaseException as exc:  # noqa: BLE001 - every caller must hear about it
            self._fail_all(batch, exc)
            return
        for p in self._participants:
            p.after_commit()
        for (ok, value), (_, future) in zip(outcomes, batch):
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

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
            for p, token in zip(self._participants, tokens):
                p.rollback_to(token)
            return False, exc

    def _fail_all(self, batch: list[tuple[Callable, Future]], exc: BaseException) -> None:
        for p in self._participants:
            p.after_rollback()
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)

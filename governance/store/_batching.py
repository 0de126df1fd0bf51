"""The hand-offs between the transactor's callers and its one writer thread. Private: only
`transactor` should need this.

Why it exists: a queue and a Future per unit would do the same job, but under concurrency
each wake-up is a context switch and a GIL hand-off on the commit path, and measured they
cost several times as much as the commits they wait for. So callers block on one bare lock
each (`Waiter`), a committed batch wakes them in a chain rather than all at once, and the
writer is woken once per batch, not once per unit (`Inbox`). Nothing here knows about
transactions; `transactor` holds the rule (one writer, batched commits).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["STOP", "Inbox", "Waiter", "wake_chain", "wake_rest"]

# Put in the inbox to stop the writer: the units before it still run.
STOP = object()


class Waiter:
    """What `Transactor.run` blocks on: the part of a Future the committer uses, on one bare
    lock. A caller wakes per event, so this hand-off is on the hot path; a Future's condition
    variable costs several times as much on both sides.

    A committed batch's waiters are woken in a chain (`wake_chain`): the committer wakes the
    first, each caller wakes the next as it resumes. Woken all at once, sixteen threads would
    queue for the GIL the committer still holds, each paying a context switch for nothing.
    A caller that stopped waiting (a timeout) breaks the chain; the committer wakes whoever
    is still asleep before it sleeps itself (`wake_rest`)."""

    __slots__ = ("_lock", "_ok", "_value", "_next")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._ok = False
        self._value: Any = None
        self._next: Waiter | None = None

    def done(self) -> bool:
        return not self._lock.locked()

    def settle(self, ok: bool, value: Any) -> None:
        """Record the outcome without waking the caller (`wake_chain` does, in order)."""
        self._ok, self._value = ok, value

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
        """The unit's value, or its exception raised; TimeoutError after `timeout` seconds."""
        if not self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            raise TimeoutError("the batch holding this unit did not commit in time")
        following, self._next = self._next, None
        if following is not None:
            following._release()
        self._release()  # stays done for any later look
        if self._ok:
            return self._value
        raise self._value


def wake_chain(waiters: list[Waiter]) -> None:
    """Outcomes already set: open the first; each opens the next as it resumes."""
    for waiter, following in zip(waiters, waiters[1:]):
        waiter._next = following
    if waiters:
        waiters[0]._release()


def wake_rest(waiters: list[Waiter]) -> None:
    """Open every waiter still closed (a chain a caller broke by no longer waiting)."""
    for waiter in waiters:
        if waiter._lock.locked():
            waiter._release()


class Inbox:
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
            if (len(self._items) >= self._want or item is STOP) and self._bell.locked():
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
            ready = len(self._items) >= want or STOP in self._items
            self._bell.acquire(blocking=False)  # whatever rang it has been seen
        if not ready and wait > 0:
            self._bell.acquire(timeout=wait)
        with self._guard:
            self._want = 1 << 62  # no bell while the batch runs: the next take looks first
            self._bell.acquire(blocking=False)
            n = min(len(self._items), limit)
            return [self._items.popleft() for _ in range(n)]

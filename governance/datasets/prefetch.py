"""Overlap the stages of a pipeline: the next item is produced on a thread while the
caller works on this one. Arrow's readers and writers release the GIL, so reading the next
CSV block and compressing the last Parquet row group run beside the masking in between."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["BackgroundWriter", "prefetched"]

T = TypeVar("T")
_DONE = object()


def prefetched(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Yield what `items` yields, computing up to `depth` items ahead on a thread. An
    exception from `items` is raised here, at the point it would have been; leaving early
    stops the thread."""
    slots: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put((True, _DONE))
        except BaseException as exc:
            slots.put((False, exc))

    thread = threading.Thread(target=produce, name="privet-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = slots.get()
            if not ok:
                raise item
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                slots.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()


class BackgroundWriter(Generic[T]):
    """Calls `write(item)` on a thread, one item at a time and in order, with at most
    `depth` items waiting. `close()` waits for the last write and re-raises a write's
    error; so does the next `put` after a write failed."""

    def __init__(self, write: Callable[[T], None], depth: int = 1) -> None:
        self._write = write
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="privet-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not _DONE:
            if self._error is None:
                try:
                    self._write(item)
                except BaseException as exc:
                    self._error = exc

    def put(self, item: T) -> None:
        self._raise()
        self._queue.put(item)

    def close(self) -> None:
        self._queue.put(_DONE)
        self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

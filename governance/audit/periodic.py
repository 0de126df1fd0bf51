"""A flush on a clock: counted audit events (coalesced denials and reads, inference counts)
are written once a period by a daemon thread, and once more when their owner closes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["PeriodicFlush"]

log = logging.getLogger("privet.audit")


class PeriodicFlush:
    """Calls `flush()` every `period_s` seconds until `close()`. A flush that fails is logged
    and tried again next period (its owner keeps what it could not write); `close()` flushes
    one last time and lets that failure propagate only as a log line."""

    def __init__(self, flush: Callable[[], int], period_s: float, name: str) -> None:
        self._flush = flush
        self._period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._period_s):
            try:
                self._flush()
            except Exception:
                log.warning("could not write the counted audit events; retried next period", exc_info=True)

    def close(self) -> None:
        self._stop.set()
        try:
            self._flush()
        except Exception:
            log.exception("the last counted audit events could not be written at close")

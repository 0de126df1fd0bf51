"""Capacity and patience for streams, so that no caller can hold a server's workers by
streaming slowly: uploads (client-streaming calls: CreateDataset, PreviewMasking,
CreateModelVersion) and downloads (server-streaming calls: ReadDataset, WatchJob,
DownloadWeights, ExportEvents), each kind with a gate of its own.

A synchronous gRPC server runs each call on one worker thread for its whole life, so an
upload that sends its first message and then waits holds a worker for ever: 32 of them
hung the registry, then (as it could not confirm releases) every inference. Three rules:

- at most `per_principal` uploads at once for one principal, and `total` at once for the
  server (half its workers by default), so reads always find a worker;
- each upload must deliver a message within `idle_seconds` of the last one (the first
  counted from the call's start), and, once `idle_seconds` have passed, keep an average of
  at least `min_bytes_per_second` (a byte every few seconds would otherwise hold a slot for
  ever); a watchdog cancels one that does not;
- a refused or cut-off upload leaves nothing behind (the upload code already discards a
  stream that ends with the call inactive) and is audited by the caller of `admit`.

A download is idle while the client does not take the message it was handed (gRPC blocks
the worker in the send once the flow-control window is full): a client that stops reading
is cut off after `idle_seconds` of that, while a stream that is merely waiting for news (a
job's progress) is not.

Settings: `[uploads]` and `[streams]` (downloads) in privet.toml, each with `idle_seconds`,
`per_principal` and `total`.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from privet.governance.errors import ResourceExhausted

__all__ = ["DEFAULT_IDLE_SECONDS", "DEFAULT_PER_PRINCIPAL", "Upload", "UploadGate"]

T = TypeVar("T")
log = logging.getLogger("privet.server")

DEFAULT_IDLE_SECONDS = 30.0
DEFAULT_PER_PRINCIPAL = 4
DEFAULT_MIN_BYTES_PER_SECOND = 1024.0  # uploads only: a slow link still sends far more


@dataclass(eq=False)
class Upload:
    """One admitted upload: its stream refreshes the idle clock with every message."""

    principal: str
    context: Any
    last: float
    _gate: UploadGate
    action: str = ""
    api: str = ""  # the audit resource's api (derived from `action` when empty)
    # Whether the stream is waiting on its client: always for an upload (it waits for the
    # next message), for a download only while the client has not taken the last message.
    waiting: bool = True
    started: float = 0.0
    received: int = 0  # bytes of the messages an upload's client sent
    complete: bool = False  # the client's stream has ended
    cut_off: bool = False
    _key: int = field(default=0)

    @property
    def idle_limit(self) -> float:
        return self._gate.idle_seconds

    def stream(self, requests: Iterable[T]) -> Iterator[T]:
        for message in requests:
            self.last = self._gate.clock()
            size = getattr(message, "ByteSize", None)
            self.received += size() if callable(size) else len(message) if isinstance(message, (bytes, bytearray, memoryview)) else 0
            yield message
        # The client has sent everything: from here the server works (masking a large upload
        # takes minutes), and the client waits for the answer. Nothing to cut off.
        self.waiting, self.complete = False, True

    def responses(self, messages: Iterable[T]) -> Iterator[T]:
        """A download's messages: waiting on the client from when one is handed to gRPC until
        gRPC asks for the next (it asks once the previous one is sent)."""
        for message in messages:
            self.last, self.waiting = self._gate.clock(), True
            yield message
            self.waiting = False

    def __enter__(self) -> Upload:
        return self

    def __exit__(self, *exc: object) -> None:
        self._gate.release(self)


class UploadGate:
    def __init__(self, *, total: int, per_principal: int = DEFAULT_PER_PRINCIPAL, idle_seconds: float = DEFAULT_IDLE_SECONDS,
                 clock: Callable[[], float] = time.monotonic, on_cut_off: Callable[[Upload], None] | None = None, section: str = "uploads",
                 min_bytes_per_second: float = 0.0) -> None:
        if total < 1 or per_principal < 1 or not idle_seconds > 0:
            raise ValueError("upload limits must be positive")
        self.total, self.per_principal, self.idle_seconds = total, per_principal, idle_seconds
        self.clock = clock
        self.section = section  # its privet.toml section, named in refusals
        self.min_bytes_per_second = min_bytes_per_second
        self._on_cut_off = on_cut_off
        self._lock = threading.Lock()
        self._active: dict[int, Upload] = {}
        self._ids = itertools.count(1)
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="privet-upload-watchdog", daemon=True)
        self._watchdog.start()

    def admit(self, principal: str, context: Any, action: str = "", *, waiting: bool = True, api: str = "") -> Upload:
        """An upload slot for `principal`, or ResourceExhausted naming the limit reached."""
        with self._lock:
            mine = sum(1 for u in self._active.values() if u.principal == principal)
            if mine >= self.per_principal:
                raise ResourceExhausted(f"{principal} already has {mine} {self.section} in progress, the most one principal may have at once "
                                        f"([{self.section}] per_principal = {self.per_principal}); finish or cancel one first")
            if len(self._active) >= self.total:
                raise ResourceExhausted(f"this server already has {len(self._active)} {self.section} in progress, the most it takes at once "
                                        f"([{self.section}] total = {self.total}); retry later")
            now = self.clock()
            upload = Upload(principal, context, now, self, action=action, api=api, waiting=waiting, started=now, _key=next(self._ids))
            self._active[upload._key] = upload
            return upload

    def on_cut_off(self, callback: Callable[[Upload], None]) -> None:
        """Called (from the watchdog) for each upload it cuts off: the audit hook."""
        self._on_cut_off = callback

    def release(self, upload: Upload) -> None:
        with self._lock:
            self._active.pop(upload._key, None)

    def close(self) -> None:
        self._stop.set()

    def check_idle(self) -> list[Upload]:
        """Cancel every upload idle for longer than `idle_seconds`; returns them."""
        now = self.clock()
        with self._lock:
            idle = [u for u in self._active.values() if not u.cut_off and (self._silent(u, now) or self._trickling(u, now))]
            for upload in idle:
                upload.cut_off = True
        for upload in idle:
            upload.context.cancel()  # wakes the worker blocked on the stream: it sees the call inactive
            if self._on_cut_off is not None:
                self._on_cut_off(upload)
        return idle

    def _silent(self, u: Upload, now: float) -> bool:
        return u.waiting and now - u.last > self.idle_seconds

    def _trickling(self, u: Upload, now: float) -> bool:
        elapsed = now - u.started
        return not u.complete and self.min_bytes_per_second > 0 and elapsed > self.idle_seconds and u.received < self.min_bytes_per_second * elapsed

    def _watch(self) -> None:
        period = min(1.0, self.idle_seconds / 4)
        while not self._stop.wait(period):
            try:
                self.check_idle()
            except Exception:
                log.exception("stream watchdog")

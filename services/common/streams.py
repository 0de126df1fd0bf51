"""Client streams: the end of a request stream is a finished upload only if the call is alive.

grpcio ends a request iterator the same way whether the client closed its side or the call
was failed under it (a message over the size limit, a cancellation): the iterator stops, and
the failure reaches the call a moment later (measured: under a millisecond). An upload that
took that stop for its end would store whatever had arrived. So the last thing a chunk stream
does is look at the call, and, when the client did not state the upload's size (which would
settle it), give the failure a moment to arrive.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

import grpc

__all__ = ["SETTLE_SECONDS", "StreamBroken", "messages"]

T = TypeVar("T")

SETTLE_SECONDS = 0.02  # how long an unsized stream's end waits for a failure to show


class StreamBroken(grpc.RpcError):
    """The request stream stopped because the call failed, not because the client finished."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.CANCELLED

    def details(self) -> str:
        return "the request stream stopped with the call no longer active"


def messages(requests: Iterable[T], context: grpc.ServicerContext, *, sized: bool) -> Iterator[T]:
    """The stream's messages; raises StreamBroken at its end if the call is no longer active,
    watching it for SETTLE_SECONDS first unless the client stated the upload's size (`sized`:
    a short stream then fails the size check)."""
    yield from requests
    deadline = time.monotonic() + (0.0 if sized else SETTLE_SECONDS)
    while context.is_active() and time.monotonic() < deadline:
        time.sleep(0.001)
    if not context.is_active():
        raise StreamBroken()

"""A request stream that stops because its call failed is not a finished upload."""

from __future__ import annotations

import grpc
import pytest

from privet.services.common.streams import StreamBroken, messages


class _Context:
    def __init__(self, active: bool) -> None:
        self._active = active

    def is_active(self) -> bool:
        return self._active


def test_a_stream_the_client_closed_ends_after_its_messages() -> None:
    for sized in (True, False):
        assert list(messages(iter([b"a", b"b"]), _Context(active=True), sized=sized)) == [b"a", b"b"]


def test_a_stream_stopped_under_a_failed_call_raises_at_its_end() -> None:
    got = []
    with pytest.raises(StreamBroken) as err:
        for message in messages(iter([b"a", b"b"]), _Context(active=False), sized=True):
            got.append(message)
    assert got == [b"a", b"b"]  # everything that did arrive, then the failure, never a clean end
    assert err.value.code() == grpc.StatusCode.CANCELLED


class _FailingSoon(_Context):
    """Active at the stream's end, failed a moment later: what grpcio does with a message over
    the size limit."""

    def __init__(self, polls_alive: int) -> None:
        super().__init__(active=True)
        self._polls = polls_alive

    def is_active(self) -> bool:
        self._polls -= 1
        return self._polls >= 0


def test_an_unsized_stream_waits_a_moment_for_its_call_to_fail() -> None:
    with pytest.raises(StreamBroken):
        list(messages(iter([b"a"]), _FailingSoon(polls_alive=3), sized=False))
    # A stated size settles the end by itself (the size check): no wait.
    assert list(messages(iter([b"a"]), _FailingSoon(polls_alive=3), sized=True)) == [b"a"]

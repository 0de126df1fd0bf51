"""The stream gate's rules, on a fake clock (services/common/uploads.py)."""

from __future__ import annotations

import pytest

from privet.governance.errors import ResourceExhausted
from privet.services.common.uploads import UploadGate


class _Context:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


def test_caps_per_principal_and_in_total(clock: _Clock) -> None:
    gate = UploadGate(total=3, per_principal=2, idle_seconds=10, clock=clock, section="streams")
    held = [gate.admit("user/a", _Context()) for _ in range(2)]
    with pytest.raises(ResourceExhausted, match=r"\[streams\] per_principal = 2"):
        gate.admit("user/a", _Context())
    held.append(gate.admit("user/b", _Context()))
    with pytest.raises(ResourceExhausted, match=r"\[streams\] total = 3"):
        gate.admit("user/c", _Context())
    held[0].__exit__(None, None, None)
    assert gate.admit("user/c", _Context())
    gate.close()


def test_an_upload_is_cut_off_when_its_client_falls_silent(clock: _Clock) -> None:
    gate = UploadGate(total=4, idle_seconds=10, clock=clock)
    context = _Context()
    upload = gate.admit("user/a", context)
    messages = upload.stream(iter([b"a", b"b"]))
    next(messages)
    clock.now = 9.0
    next(messages)  # a message resets the clock
    clock.now = 18.0
    assert gate.check_idle() == [] and not context.cancelled
    clock.now = 19.5
    assert gate.check_idle() == [upload] and context.cancelled and upload.cut_off
    gate.close()


def test_a_download_is_cut_off_only_while_its_client_does_not_take_a_message(clock: _Clock) -> None:
    gate = UploadGate(total=4, idle_seconds=10, clock=clock, section="streams")
    context = _Context()
    stream = gate.admit("user/a", context, waiting=False)

    def news():  # a job's progress: long waits for the next message are the server's, not the client's
        clock.now += 60
        yield "epoch 1"
        clock.now += 60
        yield "epoch 2"

    out = stream.responses(news())
    assert next(out) == "epoch 1"  # handed to gRPC at t=60: now waiting on the client
    clock.now = 65
    assert gate.check_idle() == []
    assert next(out) == "epoch 2"  # taken: the producer's 60 s wait is not the client's fault
    assert gate.check_idle() == [] and not context.cancelled
    clock.now += 11  # the client takes nothing for 11 s
    assert gate.check_idle() == [stream] and context.cancelled
    gate.close()


def test_an_upload_that_trickles_is_cut_off_once_below_the_floor(clock: _Clock) -> None:
    """Red team round 2, N4: a byte every 20 s kept an upload's slot for ever."""
    gate = UploadGate(total=4, idle_seconds=10, clock=clock, min_bytes_per_second=100)
    context = _Context()
    upload = gate.admit("user/a", context)
    messages = upload.stream(iter([b"x"] * 100))
    for second in range(1, 31):
        clock.now = float(second)
        if second % 5 == 0:
            next(messages)  # never silent for 10 s, but 1 byte in 5 s
        if gate.check_idle():
            break
    assert context.cancelled and clock.now <= 11  # cut off as soon as the floor applies
    fast = _Context()
    clock.now = 30.5
    steady = gate.admit("user/b", fast)
    feed = steady.stream(iter([b"y" * 200] * 100))
    for second in range(31, 61):
        clock.now = float(second)
        next(feed)
        assert gate.check_idle() == []
    assert not fast.cancelled
    gate.close()


def test_an_upload_whose_client_has_sent_everything_is_never_cut_off(clock: _Clock) -> None:
    """The server may work on a complete upload for minutes (masking): not the client's idling."""
    gate = UploadGate(total=4, idle_seconds=10, clock=clock, min_bytes_per_second=100)
    context = _Context()
    upload = gate.admit("user/a", context)
    assert list(upload.stream(iter([b"z" * 5000]))) == [b"z" * 5000]
    clock.now = 600.0
    assert gate.check_idle() == [] and not context.cancelled
    gate.close()

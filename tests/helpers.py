"""Small helpers the tests share (clients over mTLS, status details, waiting for a condition)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from privet.governance.config import SERVICES, Home
from privet.services.common.client import secure_channel

T = TypeVar("T")


def eventually(predicate: Callable[[], T], timeout: float = 30.0, what: str = "", interval: float = 0.02) -> T:
    """Call `predicate` until it returns something true, and return that; fail naming `what`
    after `timeout` seconds. For what another thread or process does in its own time (a
    watcher's reload, a child's exit) where the product offers no flush or clock to drive
    it: the timeout only bounds a failing test, a passing one waits no longer than it must."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        assert time.monotonic() < deadline, f"never came true within {timeout} s: {what or predicate}"
        time.sleep(interval)


def channel(home: Home, principal: str, address: str) -> grpc.Channel:
    return secure_channel(home, principal, address)


@contextlib.contextmanager
def stubs_as(home: Home, address: str, stub_class):
    """`with stubs_as(home, address, XStub) as as_(who): as_("alice").Call(...)`: one mTLS
    channel per principal asked for, all closed at the end."""
    opened: list[grpc.Channel] = []

    def make(who: str):
        ch = channel(home, who, address)
        opened.append(ch)
        return stub_class(ch)

    try:
        yield make
    finally:
        for ch in opened:
            ch.close()


def error_info(exc: grpc.RpcError) -> dict[str, str]:
    """The ErrorInfo metadata of a failed call's google.rpc.Status (empty if none)."""
    status = rpc_status.from_call(exc)
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return dict(info.metadata)
    return {}


def bad_request_fields(exc: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(exc)
    for detail in status.details if status else ():
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            return [v.field for v in bad.field_violations]
    return []


class ServeProcess:
    """`privet serve all` in a child process, for tests that kill and restart it."""

    def __init__(self, home: Home, log_path) -> None:
        self.home = home
        self.log_path = log_path
        self.proc = None

    def start(self) -> ServeProcess:
        import subprocess
        import sys

        from privet.services.common.health import wait_healthy

        for service in SERVICES:  # a killed child leaves the ports it had bound recorded: not ours
            self.home.bound_address(service).unlink(missing_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "privet.services.cli", "--home", str(self.home.root), "serve", "all"], stdout=open(self.log_path, "a"), stderr=subprocess.STDOUT)
        results = wait_healthy(self.home, "admin", timeout=60)
        assert all(r.ok for r in results), open(self.log_path).read()[-3000:]
        return self

    def kill(self) -> None:
        import os
        import signal

        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def own_process_start() -> str:
    """This process's start time, as its process identity carries it (Linux: from /proc)."""
    from privet.governance.processes import process_identity

    identity = process_identity()
    assert "." in identity, "Linux has /proc: the identity carries the start time"
    return identity.split(".", 1)[1]

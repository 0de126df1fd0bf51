"""A process is told apart from a later one with the same pid (a restarted container's pid 1)
by its start time."""

from __future__ import annotations

import os
import subprocess
import sys

from privet.governance.processes import identity_alive, process_identity


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _own_start() -> str:
    identity = process_identity()
    assert "." in identity, "Linux has /proc: the identity carries the start time"
    return identity.split(".", 1)[1]


def test_an_identity_is_alive_only_in_the_incarnation_that_made_it() -> None:
    pid, start = os.getpid(), _own_start()
    assert process_identity() == f"{pid}.{start}"
    assert identity_alive(f"{pid}.{start}")
    assert not identity_alive(f"{pid}.{int(start) + 1}")  # this pid, an earlier process
    assert not identity_alive(f"{_dead_pid()}.{start}")
    assert identity_alive(str(pid))  # recorded without a start time: the pid is all there is
    assert identity_alive("not-an-identity")  # what cannot be read is never taken for dead

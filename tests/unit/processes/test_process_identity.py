"""A process is told apart from a later one with the same pid (a restarted container's pid 1)
by its start time."""

from __future__ import annotations

import os

from privet.governance.processes import identity_alive, process_identity
from tests.helpers import dead_pid, own_process_start


def test_an_identity_is_alive_only_in_the_incarnation_that_made_it() -> None:
    pid, start = os.getpid(), own_process_start()
    assert process_identity() == f"{pid}.{start}"
    assert identity_alive(f"{pid}.{start}")
    assert not identity_alive(f"{pid}.{int(start) + 1}")  # this pid, an earlier process
    assert not identity_alive(f"{dead_pid()}.{start}")
    assert identity_alive(str(pid))  # recorded without a start time: the pid is all there is
    assert identity_alive("not-an-identity")  # what cannot be read is never taken for dead

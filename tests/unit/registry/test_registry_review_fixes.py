"""Review fixes, the parts that need no database: the gate's integers saturate at Cedar's
range, and a process is told apart from a later one with the same pid (a restarted
container's pid 1) by its start time, for the blob store's temporaries."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from privet.governance.processes import identity_alive, process_identity
from privet.governance.registry import ReleaseFacts, Stage
from privet.governance.store.blobs import BlobStore, temporary_name

CEDAR_LONG_MAX = 2**63 - 1


def _facts(epsilon: float | None, delta: float | None) -> ReleaseFacts:
    return ReleaseFacts(version_id="v", model="m", version=1, stage=Stage.REGISTERED, owner="user/alice", trainer="user/alice",
                        requester="", approvers=(), trained_on_personal_data=True, has_guarantee=True, epsilon=epsilon, delta=delta)


@pytest.mark.parametrize("epsilon", [9.3e15, 1e16, 1e300, float("inf"), float("nan")])
def test_a_huge_epsilon_saturates_at_cedars_largest_integer(epsilon: float) -> None:
    attrs = _facts(epsilon, 1e-6).entity()["attrs"]
    assert attrs["epsilon_milli"] == CEDAR_LONG_MAX  # still above any limit, and a valid Cedar long
    assert attrs["delta_ppb"] == 1000


def test_ordinary_values_are_still_exact_and_rounded_up() -> None:
    attrs = _facts(8.0001, 1.00000001e-5).entity()["attrs"]
    assert (attrs["epsilon_milli"], attrs["delta_ppb"]) == (8001, 10001)
    assert _facts(9.2e15, 1e-6).entity()["attrs"]["epsilon_milli"] == 9_200_000_000_000_000_000  # just inside the range


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


def test_sweep_removes_temporaries_of_an_earlier_process_with_this_pid(tmp_path) -> None:
    store = BlobStore(tmp_path / "blobs")
    tmp = tmp_path / "blobs" / "tmp"
    pid, start = os.getpid(), _own_start()
    writer = store.writer()
    writer.write(b"in flight")
    left = {
        f"{pid}.{int(start) + 7}-{os.urandom(8).hex()}": False,  # a container restart: pid 1 again
        f"masking-{pid}.{int(start) + 7}-{os.urandom(8).hex()}": False,
        f"{_dead_pid()}-{os.urandom(8).hex()}": False,  # the older, pid-only names still sweep
        f"upload-{pid}-{os.urandom(8).hex()}": True,  # pid-only and the pid is alive: kept
        temporary_name("upload"): True,
    }
    for name in left:
        (tmp / name).write_bytes(b"x")
    (tmp / next(n for n in left if n.startswith("masking-"))).unlink()
    (tmp / next(n for n in left if n.startswith("masking-"))).mkdir()  # an exchange directory
    assert store.sweep_orphans() == 3
    kept = {n for n, keep in left.items() if keep}
    (in_flight,) = {p.name for p in tmp.iterdir()} - kept
    assert kept <= {p.name for p in tmp.iterdir()} and in_flight.startswith(f"{pid}.{start}-")  # the writer's own
    writer.write(b" and done")
    store.open(writer.commit()).close()

"""The blob store sweeps the temporaries of dead processes, including an earlier process with
this pid (a restarted container's pid 1), and keeps those of live ones."""

from __future__ import annotations

import os

from privet.governance.store.blobs import BlobStore, temporary_name
from tests.helpers import dead_pid, own_process_start


def test_sweep_removes_temporaries_of_an_earlier_process_with_this_pid(tmp_path) -> None:
    store = BlobStore(tmp_path / "blobs")
    tmp = tmp_path / "blobs" / "tmp"
    pid, start = os.getpid(), own_process_start()
    writer = store.writer()
    writer.write(b"in flight")
    left = {
        f"{pid}.{int(start) + 7}-{os.urandom(8).hex()}": False,  # a container restart: pid 1 again
        f"masking-{pid}.{int(start) + 7}-{os.urandom(8).hex()}": False,
        f"{dead_pid()}-{os.urandom(8).hex()}": False,  # the older, pid-only names still sweep
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

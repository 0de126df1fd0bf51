"""Mask a large upload's batches in worker processes, so that masking (Python per distinct
value: hashing, validating candidates) uses every core, as Arrow's reader does.

Workers are forked from a fork server (started once, with the masking modules already
imported, so a pool starts in milliseconds and never forks a process full of gRPC
threads). Each receives the plan once; batches go out and masked tables come back in
order, at most `workers + 1` in flight, so memory stays bounded per process. An error in
a worker (PII in a column the plan keeps) arrives as the same exception.

A worker outlives nothing: it watches the process that owns its pool and exits when that
process is gone. Without the watch, a SIGKILLed service left its workers (and so the fork
server, whose liveness pipe they hold) blocked for ever on a queue whose pipe they
themselves keep open.

Batches and tables cross as Arrow IPC files in a private directory beside the upload, not
through the pool's pipes: pickling a 9 MB batch and pushing it through a pipe cost the parent
~22 ms of CPU, writing it as a file ~4 ms, and the reader maps it without a copy. The
directory (raw values included) is removed when the upload is done, whatever happened.
"""

from __future__ import annotations

import multiprocessing
import os
import pathlib
import shutil
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor

import pyarrow as pa

from privet.governance.masking.profile import MaskingPlan
from privet.governance.processes import identity_alive, process_identity
from privet.governance.store.blobs import temporary_name

__all__ = ["masked_in_workers"]

_PRELOAD = ["privet.governance.datasets.workers"]
_plan: MaskingPlan | None = None


OWNER_POLL_SECONDS = 1.0


def _install(plan: MaskingPlan, owner: str) -> None:
    global _plan
    _plan = plan
    threading.Thread(target=_exit_with, args=(owner,), name="privet-owner-watch", daemon=True).start()


def _exit_with(owner: str) -> None:
    """Exit this worker once the process `owner` (`process_identity`) is gone."""
    while identity_alive(owner):
        time.sleep(OWNER_POLL_SECONDS)
    os._exit(0)  # no cleanup to run: the owner is gone, and with it anyone to hand results to


def _write(path: str, data: pa.RecordBatch | pa.Table) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # private from the start
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, data.schema) as writer:
        writer.write(data)


def _take(path: str) -> pa.Table:
    """The table in the IPC file at `path`, which is removed (the mapping outlives it)."""
    table = pa.ipc.open_file(pa.memory_map(path)).read_all()
    os.unlink(path)
    return table


def _mask(source: str, target: str) -> str:
    assert _plan is not None, "worker started without a plan"
    batch = _take(source)
    # The plan was made on the first batch: PII first showing up later in a column the plan
    # keeps must still stop the ingestion.
    _plan.verify(batch)
    _write(target, _plan.mask(batch))
    return target


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


def masked_in_workers(batches: Iterator[pa.RecordBatch], plan: MaskingPlan, workers: int,
                      workdir: pathlib.Path) -> Iterator[pa.Table]:
    """`plan.verify(b); plan.mask(b)` for each batch, computed by `workers` processes,
    yielded in the batches' order. Exchange files live in a directory under `workdir`."""
    # Named `<label>-<process identity>-<random>` like the upload's other temporaries, so that if this
    # process dies mid-upload the blob store's start-up sweep removes it (raw values).
    exchange = workdir / temporary_name("masking")
    exchange.mkdir(mode=0o700)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_context(), initializer=_install, initargs=(plan, process_identity()))
    pending: deque[Future[str]] = deque()
    try:
        for number, batch in enumerate(batches):
            source = str(exchange / f"{number}.in")
            _write(source, batch)
            pending.append(pool.submit(_mask, source, str(exchange / f"{number}.out")))
            if len(pending) > workers:
                yield _take(pending.popleft().result())
        while pending:
            yield _take(pending.popleft().result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(exchange, ignore_errors=True)

"""Mask a large upload's batches in worker processes, so that masking (Python per distinct
value: hashing, validating candidates) uses every core, as Arrow's reader does.

Workers are forked from a fork server (started once, with the masking modules already
imported, so a pool starts in milliseconds and never forks a process full of gRPC
threads). Each receives the plan once; batches go out and masked tables come back in
order, at most `workers + 1` in flight, so memory stays bounded per process. An error in
a worker (PII in a column the plan keeps) arrives as the same exception.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor

import pyarrow as pa

from governance.masking.profile import MaskingPlan

__all__ = ["masked_in_workers"]

_PRELOAD = ["governance.datasets.workers"]
_plan: MaskingPlan | None = None


def _install(plan: MaskingPlan) -> None:
    global _plan
    _plan = plan


def _mask(batch: pa.RecordBatch) -> pa.Table:
    assert _plan is not None, "worker started without a plan"
    # The plan was made on the first batch: PII first showing up later in a column the plan
    # keeps must still stop the ingestion.
    _plan.verify(batch)
    return _plan.mask(batch)


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


def masked_in_workers(batches: Iterator[pa.RecordBatch], plan: MaskingPlan, workers: int) -> Iterator[pa.Table]:
    """`plan.verify(b); plan.mask(b)` for each batch, computed by `workers` processes,
    yielded in the batches' order."""
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_context(), initializer=_install, initargs=(plan,))
    pending: deque[Future[pa.Table]] = deque()
    try:
        for batch in batches:
            pending.append(pool.submit(_mask, batch))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

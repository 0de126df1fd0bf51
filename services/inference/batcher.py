"""Dynamic batching: requests for one model wait at most `max_delay_s`, or until `max_rows`
rows are queued, and then run in one forward pass."""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future

import numpy as np
import pyarrow as pa

from privet.services.inference.loader import LoadedModel

__all__ = ["Batcher"]


class Batcher:
    def __init__(self, model: LoadedModel, *, max_rows: int = 256, max_delay_s: float = 0.0) -> None:
        self.model = model
        self._max_rows = max_rows
        self._max_delay_s = max_delay_s
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.batches = 0  # forward passes run, for tests and metrics
        threading.Thread(target=self._loop, name=f"privet-batcher-{model.name}", daemon=True).start()

    def submit(self, table: pa.Table) -> Future[np.ndarray]:
        future: Future[np.ndarray] = Future()
        self._queue.put((table, future))
        return future

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            rows = first[0].num_rows
            deadline = time.monotonic() + self._max_delay_s
            while rows < self._max_rows:
                remaining = deadline - time.monotonic()
                try:  # take what is already queued; wait for more only until the deadline
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
                rows += item[0].num_rows
            self._run(batch)

    def _run(self, batch: list[tuple[pa.Table, Future]]) -> None:
        try:
            tables = [t for t, _ in batch]
            probabilities = self.model.predict(pa.concat_tables(tables) if len(tables) > 1 else tables[0])
            self.batches += 1
        except Exception as exc:
            for _, future in batch:
                future.set_exception(exc)
            return
        offset = 0
        for table, future in batch:
            future.set_result(probabilities[offset : offset + table.num_rows])
            offset += table.num_rows

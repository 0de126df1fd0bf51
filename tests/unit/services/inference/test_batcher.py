"""Dynamic batching: concurrent requests for one model share forward passes, and each caller
gets exactly its own rows back."""

from __future__ import annotations

import threading
import time

import numpy as np
import pyarrow as pa

from privet.services.inference.batcher import Batcher


class SlowModel:
    """Stands in for a LoadedModel: echoes each row's `x` and records batch sizes."""

    name = "echo"

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    def predict(self, table: pa.Table) -> np.ndarray:
        self.batch_sizes.append(table.num_rows)
        time.sleep(0.005)  # a forward pass long enough for others to queue behind it
        x = np.asarray(table["x"].to_pylist(), dtype=np.float32)
        return np.stack([x, -x], axis=1)


def _run(batcher: Batcher, callers: int) -> dict[int, np.ndarray]:
    results: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(callers)

    def call(i: int) -> None:
        barrier.wait()
        results[i] = batcher.submit(pa.table({"x": [float(i), float(i) + 0.5]})).result(timeout=10)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_requests_share_forward_passes_and_get_their_own_rows() -> None:
    model = SlowModel()
    results = _run(Batcher(model, max_rows=256, max_delay_s=0.0), 24)
    for i, out in results.items():
        np.testing.assert_array_equal(out, [[i, -i], [i + 0.5, -(i + 0.5)]])
    assert sum(model.batch_sizes) == 48
    assert len(model.batch_sizes) < 24  # continuous batching: what queued during a pass runs together


def test_max_rows_bounds_a_batch() -> None:
    model = SlowModel()
    _run(Batcher(model, max_rows=6, max_delay_s=0.05), 12)
    assert max(model.batch_sizes) <= 6 + 2  # the batch closes once it holds max_rows (requests are 2 rows)
    assert len(model.batch_sizes) < 12

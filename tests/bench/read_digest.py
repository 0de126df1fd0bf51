"""What checking a stored dataset against its digest costs a read (issue 19, item 13).

`dataset_batches` now hashes the whole stored Parquet file before it hands out a row. This
times, in one run and interleaved, the read a ReadDataset does (Parquet batches, then the
Arrow IPC stream it sends) with and without that hash, on one masked-size table, and prints
the ratio.

    python -m tests.bench.read_digest [--rows 2000000] [--repeat 7] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import statistics
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def _table(rows: int) -> bytes:
    rng = np.random.default_rng(0)
    table = pa.table({"age": rng.integers(18, 90, rows), "spend": rng.random(rows) * 100,
                      "plan": pa.array(rng.choice(["basic", "plus", "premium"], rows)), "token": pa.array([f"tok{i:012d}" for i in range(rows)])})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _read(raw: bytes, check: bool) -> int:
    f = io.BytesIO(raw)
    if check:
        digest = hashlib.sha256()
        while chunk := f.read(1 << 20):
            digest.update(chunk)
        f.seek(0)
    out = io.BytesIO()
    parquet = pq.ParquetFile(f)
    writer = None
    for batch in parquet.iter_batches(batch_size=64 * 1024):
        writer = writer or pa.ipc.new_stream(out, batch.schema)
        writer.write_batch(batch)
    if writer:
        writer.close()
    return out.tell()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    raw = _table(args.rows)
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeat):
        for check in (False, True):  # interleaved: drift hits both alike
            started = time.perf_counter()
            _read(raw, check)
            times[check].append(time.perf_counter() - started)
    base, checked = statistics.median(times[False]), statistics.median(times[True])
    result = {"rows": args.rows, "parquet_mib": round(len(raw) / 2**20, 1), "read_ms": round(base * 1000, 1),
              "read_checked_ms": round(checked * 1000, 1), "ratio": round(checked / base, 3)}
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()

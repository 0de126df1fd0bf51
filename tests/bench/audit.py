"""Audit log throughput and proof cost, each beside a baseline measured in the same run.

    python -m tests.bench.audit --events 100000 --json

Appends/s through the group-committing transactor (the real path every RPC takes) at 1 and 16
concurrent writers, against plain one-row-per-transaction INSERTs into the same table and
against two ceilings measured in the same run: the database's own floor for batches of that
many events (W rows committed per transaction in a loop, one thread: with W synchronous
writers no batch can hold more), and the hand-off alone (W threads passing no-op units
through the same transactor: waking callers and batching them, with no log work and nothing
to fsync). A committer that does one after the other cannot beat 1 / (1/floor + 1/hand-off).
Inclusion-proof time at 10^3, 10^5 and 10^6 events. SQLite (WAL, synchronous=FULL) and the
local PostgreSQL server.
"""

from __future__ import annotations

import privet  # noqa: F401 - before grpc: pins TLS 1.3 (see privet/__init__.py)

# isort: split

import argparse
import json
import pathlib
import random
import statistics
import tempfile
import threading
import time
import uuid

import psycopg
from sqlalchemy import insert

from privet.governance.audit.log import Event
from privet.governance.audit.merkle import inclusion_proof
from privet.governance.audit.storage import SqlNodeReader
from privet.governance.runtime import Runtime
from privet.governance.store.tables import AuditEvent
from tests.conftest import PG_ADMIN_DSN, make_home


def _event(i: int) -> Event:
    return Event(principal="user/bench", action="bench.Write", resource=f"thing/{i}", decision="allow", details={"i": i})


def _threads(n: int, total: int, work) -> float:
    per = total // n
    start = time.perf_counter()
    threads = [threading.Thread(target=work, args=(t * per, per)) for t in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return per * n / (time.perf_counter() - start)


def appends_per_second(rt: Runtime, writers: int, total: int) -> float:
    def work(base: int, count: int) -> None:
        for i in range(base, base + count):
            rt.record(_event(i))

    return _threads(writers, total, work)


def handoffs_per_second(rt: Runtime, writers: int, total: int) -> float:
    """Units that do nothing, through the same transactor: the threads' hand-off ceiling."""
    def work(base: int, count: int) -> None:
        for _ in range(count):
            rt.transactor.run(_nothing, isolated=False)

    return _threads(writers, total, work)


def _nothing(_session: object) -> None:
    return None


def plain_inserts_per_second(rt: Runtime, writers: int, total: int, offset: int) -> float:
    """Baseline: one INSERT per transaction, no tree, no grouping (what a naive log does)."""
    table = AuditEvent.__table__

    def work(base: int, count: int) -> None:
        with rt.engines.writer.connect() as conn:
            for i in range(base, base + count):
                with conn.begin():
                    conn.execute(insert(table).values(seq=offset + i, time_us=0, principal="user/bench", action="bench.Plain", resource=f"thing/{i}", decision="allow", policy_ids="[]", details="{}", leaf=b"x", leaf_hash=b"y" * 32))

    return _threads(writers, total, work)


def batch_floor_per_second(rt: Runtime, batch: int, total: int, offset: int) -> float:
    """The database's own ceiling for `batch`-event group commits: one connection committing
    `batch` ready-made rows per transaction in a loop, through the driver (one multi-row
    INSERT), no tree, no threads, no Python log work. With W synchronous writers a batch
    holds at most W events, so W-writer appends can never beat this rate with batch = W."""
    cols = ("seq", "time_us", "principal", "action", "resource", "decision", "policy_ids", "details", "leaf", "leaf_hash")
    ph = "?" if rt.engines.sqlite else "%s"
    sql = f"INSERT INTO audit_events ({', '.join(cols)}) VALUES " + ", ".join(["(" + ", ".join([ph] * len(cols)) + ")"] * batch)
    begin = "BEGIN IMMEDIATE" if rt.engines.sqlite else "BEGIN"
    start = time.perf_counter()
    done = 0
    with rt.engines.writer.connect() as conn:
        driver = conn.connection.driver_connection
        if rt.engines.sqlite:
            conn.exec_driver_sql("COMMIT")  # the pool's engine began one; we drive BEGIN ourselves
        else:
            driver.autocommit = True
        while done < total:
            params = [v for j in range(batch) for v in (offset + done + j, 0, "user/bench", "bench.Floor", f"thing/{j}",
                                                         "allow", "[]", "{}", b"x" * 120, b"y" * 32)]
            driver.execute(begin)
            driver.execute(sql, params)
            driver.execute("COMMIT")
            done += batch
        if not rt.engines.sqlite:
            driver.autocommit = False
    return done / (time.perf_counter() - start)


def grow_log(rt: Runtime, target: int, batch: int = 20_000) -> None:
    while rt.audit.committed_size < target:
        n = min(batch, target - rt.audit.committed_size)
        events = [_event(i) for i in range(n)]
        rt.write(lambda _s, events=events: [rt.audit.append(e) for e in events])


def proof_micros(rt: Runtime, size: int, samples: int = 200) -> dict[str, float]:
    times = []
    with rt.read() as session:
        reader = SqlNodeReader(session)
        for _ in range(samples):
            seq = random.randrange(size)
            start = time.perf_counter()
            proof = inclusion_proof(seq, size, reader)
            times.append((time.perf_counter() - start) * 1e6)
    times.sort()
    return {"p50_us": round(statistics.median(times), 1), "p99_us": round(times[int(len(times) * 0.99) - 1], 1), "proof_len": len(proof)}


def run(db: str, events: int, sizes: list[int], rounds: int = 3) -> dict:
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="privet-bench-"))
    pg_name = None
    url = None
    if db == "postgres":
        pg_name = f"privet_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{pg_name}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"
    rt = Runtime.open(make_home(tmp / "home", url))
    try:
        out: dict = {"db": db}
        for writers in (1, 16):
            n = events if writers == 16 else max(events // 10, 1000)
            per_round = max(n // rounds, writers * 50)
            # The disk's fsync time drifts over minutes: each measure takes its turn in every
            # round, and each figure is the median of its rounds.
            samples: dict[str, list[float]] = {"appends": [], "plain": [], "floor": [], "handoff": []}
            for r in range(rounds):
                samples["appends"].append(appends_per_second(rt, writers, per_round))
                samples["plain"].append(plain_inserts_per_second(rt, writers, per_round // (4 if writers == 1 else 1),
                                                                 10**9 + writers * 10**7 + r * 10**6))
                samples["floor"].append(batch_floor_per_second(rt, writers, per_round, 2 * 10**9 + writers * 10**7 + r * 10**6))
                samples["handoff"].append(handoffs_per_second(rt, writers, per_round))
            appends, plain, floor, handoff = (statistics.median(samples[k]) for k in ("appends", "plain", "floor", "handoff"))
            serial = 1 / (1 / floor + 1 / handoff)
            out[f"appends_per_s_{writers}w"] = round(appends)
            out[f"appends_rounds_{writers}w"] = [round(x) for x in samples["appends"]]
            out[f"plain_inserts_per_s_{writers}w"] = round(plain)
            out[f"ratio_{writers}w"] = round(appends / plain, 2)
            out[f"db_floor_batch{writers}_per_s"] = round(floor)
            out[f"db_floor_rounds_{writers}w"] = [round(x) for x in samples["floor"]]
            out[f"share_of_floor_{writers}w"] = round(appends / floor, 2)
            out[f"handoff_only_per_s_{writers}w"] = round(handoff)
            out[f"serial_bound_per_s_{writers}w"] = round(serial)
            out[f"share_of_serial_bound_{writers}w"] = round(appends / serial, 2)
        # Fresh log for proof timing (the plain inserts above are not part of any tree).
        proofs = {}
        if db == "sqlite":
            rt.close()
            rt = Runtime.open(make_home(tmp / "proofs", None))
            for size in sizes:
                grow_log(rt, size)
                proofs[str(size)] = proof_micros(rt, size)
        out["inclusion_proof"] = proofs
        return out
    finally:
        rt.close()
        if pg_name:
            with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--proof-sizes", default="1000,100000,1000000")
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per measure (median reported)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.proof_sizes.split(",")]
    results = [run(db, args.events, sizes, args.rounds) for db in args.db.split(",")]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(r)


if __name__ == "__main__":
    main()

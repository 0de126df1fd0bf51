"""The store on real SQLite files and the real PostgreSQL server: the same tests on both."""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import threading
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlmodel import SQLModel

from privet.governance.audit.hashing import leaf_hash
from privet.governance.audit.integrity import check_log
from privet.governance.audit.leaf import EventRecord, encode_leaf
from privet.governance.audit.log import Event
from privet.governance.audit.merkle import MemoryNodeStore, inclusion_proof, nodes_to_store_on_append, root, verify_inclusion
from privet.governance.audit.storage import LOWEST_STORED_LEVEL, SqlNodeReader
from privet.governance.errors import NotFound, ResourceExhausted, Unavailable
from privet.governance.runtime import Runtime
from privet.governance.store import schema
from privet.governance.store.blobs import BlobStore
from privet.governance.store.engine import SQLITE_PAGE_SIZE, make_engines
from privet.governance.store.tables import AuditCheckpoint, AuditEvent, AuditHead, AuditNode
from tests.conftest import make_home


def test_migrations_build_exactly_the_declared_schema(runtime: Runtime) -> None:
    with runtime.engines.writer.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == [], diff
    schema.upgrade(runtime.engines.writer)  # idempotent


def test_sqlite_pragmas(sqlite_runtime: Runtime) -> None:
    with sqlite_runtime.engines.reader.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA page_size").scalar() == SQLITE_PAGE_SIZE


def test_an_existing_sqlite_database_keeps_its_page_size(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # made before Privet chose its page size
        db.execute("PRAGMA page_size=4096")
        db.execute("CREATE TABLE unrelated (x)")
    rt = Runtime.open(make_home(tmp_path / "home", f"sqlite:///{path}"))
    try:
        assert rt.record(_event(1)) == 0
        with rt.engines.reader.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA page_size").scalar() == 4096
    finally:
        rt.close()


def _event(i: int, who: str = "user/alice") -> Event:
    return Event(principal=who, action="test.Write", resource=f"thing/{i}", decision="allow", details={"i": i, "ratio": 0.5})


def test_concurrent_appends_get_dense_sequence_and_a_consistent_tree(runtime: Runtime) -> None:
    seqs: list[int] = []
    lock = threading.Lock()

    def writer(base: int) -> None:
        for i in range(25):
            s = runtime.record(_event(base + i))
            with lock:
                seqs.append(s)

    threads = [threading.Thread(target=writer, args=(k * 100,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seqs) == list(range(200))
    with runtime.read() as session:
        rows = session.exec(select(AuditEvent).order_by(AuditEvent.seq)).scalars().all()
        head = session.exec(select(AuditHead.size)).scalar_one()
        stored = {(n.level, n.idx): n.hash for n in session.exec(select(AuditNode)).scalars()}
        sql_root = root(200, SqlNodeReader(session))
    assert [r.seq for r in rows] == list(range(200)) and head == 200
    memory = MemoryNodeStore()
    for r in rows:
        memory.append(r.leaf)
        assert json.loads(r.details)["ratio"] == "0.5"  # floats stored canonically as text
    # Only nodes from LOWEST_STORED_LEVEL up are rows (every one of them, each right); the
    # lower ones are folded from the events' leaf hashes and give the same root.
    assert stored == {(level, idx): memory.get_node(level, idx) for level in range(LOWEST_STORED_LEVEL, 8) for idx in range(200 >> level)}
    assert sql_root == root(200, memory)


def test_a_failing_unit_rolls_back_alone_with_its_audit_events(runtime: Runtime) -> None:
    def good(session):
        return runtime.audit.append(_event(1))

    def bad(session):
        runtime.audit.append(_event(2))
        session.execute(text("SELECT 1"))
        raise ResourceExhausted("budget")

    futures = [runtime.transactor.submit(f) for f in (good, bad, good, bad, good)]
    results = []
    for f in futures:
        try:
            results.append(f.result())
        except ResourceExhausted:
            results.append("refused")
    assert results == [0, "refused", 1, "refused", 2]
    with runtime.read() as session:
        assert session.exec(select(func.count()).select_from(AuditEvent)).scalar_one() == 3


def test_two_processes_worth_of_runtimes_share_one_log(runtime: Runtime) -> None:
    """A second runtime on the same database (another replica) appends without gaps or clashes."""
    other = Runtime.open(runtime.home)
    try:
        for i in range(5):
            runtime.record(_event(i))
            other.record(_event(100 + i, "user/bob"))
        assert other.record(_event(999)) == 10
        assert runtime.record(_event(1000)) == 11
    finally:
        other.close()


def test_postgres_appends_trust_the_cached_head_and_retry_under_the_lock_when_another_replica_moved_it(
        tmp_path: pathlib.Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # (On SQLite the writer holds the whole database from BEGIN: every batch reads the head.)
    import privet.governance.audit.log as audit_log
    locked = []
    real_lock_head = audit_log.lock_head
    monkeypatch.setattr(audit_log, "lock_head", lambda conn: locked.append(1) or real_lock_head(conn))
    runtime = Runtime.open(make_home(tmp_path / "home", pg_url))
    try:
        _appends_trust_the_cached_head(runtime, locked)
    finally:
        runtime.close()


def _appends_trust_the_cached_head(runtime: Runtime, locked: list[int]) -> None:
    first = runtime.record(_event(1))
    before = len(locked)
    assert [runtime.record(_event(i)) for i in range(2, 6)] == [first + 1, first + 2, first + 3, first + 4]
    assert len(locked) == before  # pure appends: no locking read, one round trip a batch
    other = Runtime.open(runtime.home)
    try:
        assert other.record(_event(100, "user/bob")) == first + 5
    finally:
        other.close()
    locked.clear()
    assert runtime.record(_event(6)) == first + 6  # the stale head clashed; retried under the lock
    assert len(locked) == 1
    runtime.write(lambda session: runtime.audit.append(_event(7)))  # a unit with a session: locked
    assert len(locked) == 2
    with runtime.read() as session:
        assert check_log(session, runtime.verifier).ok


def test_appended_text_and_bytes_round_trip_exactly(runtime: Runtime) -> None:
    # PostgreSQL receives a batch's rows as JSON: quotes, backslashes, control characters,
    # non-ASCII and a "\\x"-looking string must all land as they were sent.
    odd = 'a "quoted" \\ back\\slash \\x00ff\n\ttab é 漢字 😀 \u2028'
    event = Event(principal=f"user/{odd}", action="test.Odd", resource=odd, decision="deny",
                  policy_ids=("p-1", odd), details={"note": odd, "n": -(2 ** 62)})
    seq = runtime.record(event)
    with runtime.read() as session:
        row = session.get(AuditEvent, seq)
        assert (row.principal, row.resource) == (f"user/{odd}", odd)
        assert json.loads(row.details) == {"note": odd, "n": -(2 ** 62)}
        assert json.loads(row.policy_ids) == ["p-1", odd]
        assert row.leaf_hash == leaf_hash(row.leaf)
        assert check_log(session, runtime.verifier).ok


def test_blob_store_is_atomic_and_content_addressed(tmp_path: pathlib.Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    digest, size = store.put([b"hello ", b"world"])
    assert size == 11 and store.path_of(digest).read_bytes() == b"hello world"
    assert b"".join(store.read_chunks(digest)) == b"hello world"
    with pytest.raises(ResourceExhausted):
        store.put([b"x" * 10, b"y" * 10], limit=15)
    w = store.writer()
    w.write(b"partial")
    w.abort()
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []
    assert set(store.digests()) == {digest}
    with pytest.raises(NotFound):
        store.open("0" * 64)


def test_orphan_temporaries_of_dead_writers_are_swept(tmp_path: pathlib.Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    orphan = tmp_path / "blobs" / "tmp" / "999999-deadbeef"  # no such pid
    orphan.write_bytes(b"half a blob")
    exchange = tmp_path / "blobs" / "tmp" / "masking-999999-cafe"  # a dead ingestion's worker files
    exchange.mkdir()
    (exchange / "3.in").write_bytes(b"raw batch")
    mine = store.writer()
    mine.write(b"in flight")
    assert store.sweep_orphans() == 2
    assert not orphan.exists() and not exchange.exists()
    assert mine.commit()  # a live writer's temporary is left alone


def test_engine_accepts_plain_postgres_urls(pg_url: str) -> None:
    engines = make_engines(pg_url.replace("postgresql+psycopg://", "postgresql://"))
    with engines.reader.connect() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    engines.dispose()
    assert os.environ.get("PRIVET_DATABASE_URL") is None


def test_a_unit_appending_more_events_than_one_statement_holds_commits_them_all(runtime: Runtime) -> None:
    # 4,000 events (40,000 parameters, plus their nodes) exceed one statement's parameter
    # budget: the batch is written in several statements, and the stored nodes still give the
    # tree the events recompute to (check_audit_log compares both).
    runtime.record(_event(-1))  # start at an odd size so the nodes straddle chunk edges
    runtime.write(lambda _s: [runtime.audit.append(_event(i)) for i in range(4000)])
    report = runtime.check_audit_log()
    assert report.ok and report.size == 4001, report.message
    memory = MemoryNodeStore()
    with runtime.read() as session:
        for row in session.exec(select(AuditEvent).order_by(AuditEvent.seq)).scalars():
            memory.append(row.leaf)
        stored = {(n.level, n.idx): n.hash for n in session.exec(select(AuditNode)).scalars()}
    assert stored == {(level, idx): memory.get_node(level, idx)
                      for level in range(LOWEST_STORED_LEVEL, 13) for idx in range(4001 >> level)}


def test_run_hands_back_results_errors_and_timeouts(runtime: Runtime) -> None:
    assert runtime.transactor.run(lambda _s: 41 + 1) == 42
    assert runtime.transactor.run(lambda _s: "bare", isolated=False) == "bare"
    with pytest.raises(ResourceExhausted, match="budget"):
        runtime.transactor.run(lambda _s: (_ for _ in ()).throw(ResourceExhausted("budget")), isolated=False)
    release = threading.Event()
    with pytest.raises(TimeoutError):  # a timeout already past: asks without waiting
        runtime.transactor.run(lambda _s: release.wait(5), timeout=-1)
    with pytest.raises(TimeoutError):  # the unit is still running when the caller gives up
        runtime.transactor.run(lambda _s: release.wait(5), timeout=0.05)
    release.set()
    assert runtime.record(_event(7)) >= 0  # the committer carried on


def test_callers_queued_behind_one_that_gave_up_are_still_woken(runtime: Runtime) -> None:
    # A committed batch wakes its callers in a chain, each waking the next: the first caller
    # here timed out, so the committer itself must wake the rest.
    transactor = runtime.transactor
    gate, blocker = _hold_committer(transactor)

    outcomes: dict[int, object] = {}

    def call(i: int, timeout: float | None) -> None:
        try:
            outcomes[i] = transactor.run(lambda _s: i, timeout, isolated=False)
        except TimeoutError as exc:
            outcomes[i] = exc

    callers = [threading.Thread(target=call, args=(0, 0.05))]
    callers[0].start()
    _wait_for(lambda: len(transactor._inbox._items) == 1)
    callers += [threading.Thread(target=call, args=(i, None)) for i in range(1, 5)]
    for i, t in enumerate(callers[1:], start=2):
        t.start()
        _wait_for(lambda i=i: len(transactor._inbox._items) == i)
    callers[0].join(5)
    assert isinstance(outcomes[0], TimeoutError)  # it gave up before its batch ran
    gate.set()
    for t in callers[1:]:
        t.join(5)
        assert not t.is_alive(), "a caller behind the one that gave up was never woken"
    blocker.join(5)
    assert [outcomes[i] for i in range(1, 5)] == [1, 2, 3, 4]


def test_an_object_a_unit_returns_is_not_changed_by_a_later_unit_of_its_batch(runtime: Runtime) -> None:
    # The units of a batch share one session: a later unit that loads the same row must not
    # change what an earlier unit already handed back to its caller.
    transactor = runtime.transactor
    gate, blocker = _hold_committer(transactor)

    def create(session):
        row = AuditCheckpoint(size=999, root_hash=b"r" * 32, note="as created", time_us=1)
        session.add(row)
        return row

    def edit(session):
        session.get(AuditCheckpoint, 999).note = "as edited"

    created, edited = transactor.submit(create), transactor.submit(edit)
    _wait_for(lambda: len(transactor._inbox._items) == 2)
    gate.set()
    edited.result(5)
    blocker.join(5)
    assert created.result(5).note == "as created"
    with runtime.read() as session:
        assert session.get(AuditCheckpoint, 999).note == "as edited"


def _hold_committer(transactor) -> tuple[threading.Event, threading.Thread]:
    """Keep the committer inside a unit until the returned event is set, so that what is
    submitted meanwhile queues up for the next batch."""
    gate = threading.Event()
    blocker = threading.Thread(target=lambda: transactor.run(lambda _s: gate.wait(10), isolated=False))
    blocker.start()
    _wait_for(lambda: len(transactor._inbox._items) == 0)  # the committer is inside the gate
    return gate, blocker


def _wait_for(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.001)


def test_sql_reader_gives_every_perfect_node_and_refuses_one_over_a_gap(runtime: Runtime) -> None:
    runtime.write(lambda _s: [runtime.audit.append(_event(i)) for i in range(100)])
    memory = MemoryNodeStore()
    with runtime.read() as session:
        for row in session.exec(select(AuditEvent).order_by(AuditEvent.seq)).scalars():
            memory.append(row.leaf)
        reader = SqlNodeReader(session)
        for level in range(7):
            for idx in range(100 >> level):
                assert reader.get_node(level, idx) == memory.get_node(level, idx), (level, idx)
        with pytest.raises(LookupError):
            reader.get_node(2, 25)  # leaves 100..103 do not exist
    with runtime.engines.writer.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 37"))
    with runtime.read() as session:
        reader = SqlNodeReader(session)
        assert reader.get_node(2, 8) == memory.get_node(2, 8)  # leaves 32..35: before the gap
        with pytest.raises(LookupError):
            reader.get_node(2, 9)  # leaves 36..39 span the deleted 37


def test_a_database_error_in_the_append_sql_is_unavailable_and_the_committer_recovers(runtime: Runtime) -> None:
    # The append SQL goes to the driver directly: its errors must still read as the database
    # failing (retryable), and the committer must take a fresh connection afterwards.
    runtime.record(_event(1))
    with runtime.engines.writer.begin() as conn:
        conn.execute(text("ALTER TABLE audit_events RENAME TO audit_events_away"))
    with pytest.raises(Unavailable, match="database unavailable"):
        runtime.record(_event(2))
    with runtime.engines.writer.begin() as conn:
        conn.execute(text("ALTER TABLE audit_events_away RENAME TO audit_events"))
    assert runtime.record(_event(3)) == 1
    assert runtime.check_audit_log().ok


def test_a_log_written_before_migration_0006_upgrades_and_still_proves(tmp_path: pathlib.Path, db_url: str) -> None:
    # A database at 0005 holds every perfect node, level 0 up; after 0006 only level 4 up,
    # and the log verifies, appends and proves as before.
    engines = make_engines(db_url)
    schema.upgrade(engines.writer, "0005")
    memory = MemoryNodeStore()
    records = [EventRecord(i, 1_750_000_000_000_000 + i, "user/old", "test.Write", f"thing/{i}", "allow") for i in range(37)]
    with engines.writer.begin() as conn:
        for r in records:
            leaf = encode_leaf(r)
            conn.execute(AuditEvent.__table__.insert().values(seq=r.seq, time_us=r.time_us, principal=r.principal, action=r.action, resource=r.resource,
                                                              decision=r.decision, policy_ids="[]", details="{}", leaf=leaf, leaf_hash=leaf_hash(leaf)))
            for level, idx, h in nodes_to_store_on_append(memory.size, leaf_hash(leaf), memory):
                conn.execute(AuditNode.__table__.insert().values(level=level, idx=idx, hash=h))
            memory.append(leaf)
        conn.execute(AuditHead.__table__.update().where(AuditHead.__table__.c.id == 1).values(size=37))  # 0001 made the row
    engines.dispose()
    rt = Runtime.open(make_home(tmp_path / "home", db_url))
    try:
        assert rt.audit.tampered is None
        with rt.read() as session:
            assert session.exec(select(func.min(AuditNode.level))).scalar_one() == LOWEST_STORED_LEVEL
        assert rt.record(_event(37)) == 37
        memory.append(_stored_leaf(rt, 37))
        with rt.read() as session:
            reader = SqlNodeReader(session)
            assert root(38, reader) == root(38, memory)
            for seq in (0, 5, 16, 31, 36, 37):
                proof = inclusion_proof(seq, 38, reader)
                assert verify_inclusion(memory.get_node(0, seq), seq, 38, proof, root(38, memory))
    finally:
        rt.close()


def _stored_leaf(rt: Runtime, seq: int) -> bytes:
    with rt.read() as session:
        return session.exec(select(AuditEvent.leaf).where(AuditEvent.seq == seq)).scalar_one()

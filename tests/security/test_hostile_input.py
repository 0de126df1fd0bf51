"""Hostile uploads cost bounded work and leave nothing behind (issue 19, items 1, 3 and 13).

Item 1: a 40 KB JSON Lines record nested 20,000 deep overflowed pyarrow's JSON reader's stack:
SIGSEGV, and `privet serve all` lost all four services. Those reproductions run where a crash
cannot take pytest with it: the reader in a child process, the server as `privet serve all`
in a child process. Now the nesting is counted first and the upload is INVALID_ARGUMENT naming
the line and the limit, and the server goes on serving.

Item 3: a 9 KB Parquet file (one 100 MB cell, zstd) inflated to hundreds of megabytes of
server memory. Now the footer and page headers are checked before anything is decompressed:
RESOURCE_EXHAUSTED naming the limit, and the server's peak memory does not move. A
dictionary-encoded file (a few hundred kilobytes naming one 1 MiB entry 65,536 times, 64 GiB
once decoded) is counted as dictionary indices before any value is copied out.

No test here measures time.
"""

from __future__ import annotations

import io
import pathlib
import resource
import subprocess
import sys
import textwrap

import grpc
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from privet.governance.datasets import limits
from privet.governance.jsonlimits import MAX_JSON_DEPTH
from privet.governance.runtime import Runtime
from privet.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from tests.helpers import ServeProcess, bad_request_fields, channel
from tests.integration.test_ingestion import (
    _csv_bytes,
    _header,
    _requests,
    _stored_objects,
)

REPO = pathlib.Path(__file__).resolve().parents[2]

# The reproduction: 40 KB, one record. (After a shallower record with the same key,
# Arrow would refuse the type change before it recursed.)
DEEP_JSONL = b'{"x": 1, "a": ' + b"[" * 20_000 + b"]" * 20_000 + b"}\n"
_JSONL = {"format": ingestion_pb2.DATA_FORMAT_JSONL, "k": 1, "quasi_identifiers": []}
_PARQUET = {"format": ingestion_pb2.DATA_FORMAT_PARQUET, "k": 1, "quasi_identifiers": []}

# Runs in a child process: argv = upload file, format, work dir. Prints the outcome.
_READ = textwrap.dedent("""
    import pathlib, sys
    from privet.governance.datasets.formats import read_batches, spool
    from privet.governance.errors import PrivetError
    upload = spool([pathlib.Path(sys.argv[1]).read_bytes()], pathlib.Path(sys.argv[3]), limit=1 << 30)
    try:
        rows = sum(batch.num_rows for batch in read_batches(upload, sys.argv[2]))
        print("read", rows)
    except PrivetError as exc:
        print(type(exc).__name__, exc)
    finally:
        upload.discard()
""")


def _read_in_child(tmp_path: pathlib.Path, data: bytes, fmt: str, *, memory_limit: int | None = None) -> subprocess.CompletedProcess[str]:
    upload = tmp_path / f"upload.{fmt}"
    upload.write_bytes(data)

    def limit_memory() -> None:
        if memory_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    return subprocess.run([sys.executable, "-c", _READ, str(upload), fmt, str(tmp_path / "work")], check=False, cwd=REPO,
                          capture_output=True, text=True, timeout=120, preexec_fn=limit_memory)


def _parquet(table: pa.Table, **options) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def _peak_rss_after(call) -> int:
    """How far this process's peak resident set rose above its resident set while `call` ran
    (the servers of the `servers` fixture run in this process)."""
    def status(field: str) -> int:
        with open("/proc/self/status") as lines:
            for line in lines:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise KeyError(field)

    before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # resets VmHWM to the current RSS
        f.write("5")
    call()
    return status("VmHWM") - before


# --- item 1: deep JSON Lines ------------------------------------------------------------------

def test_the_reader_refuses_deep_jsonl_instead_of_crashing(tmp_path: pathlib.Path) -> None:
    # Before: the child died of SIGSEGV (return code -11) inside pyarrow's JSON reader.
    child = _read_in_child(tmp_path, DEEP_JSONL, "jsonl")
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip() == f"InvalidArgument line 1: JSON nested deeper than the limit of {MAX_JSON_DEPTH} levels"


def test_the_server_answers_deep_jsonl_with_invalid_argument_and_keeps_serving(served: ServeProcess) -> None:
    rt = Runtime.open(served.home)
    try:
        before = _stored_objects(rt)
        with channel(served.home, "alice", served.home.settings().addresses["ingestion"]) as ch:
            stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
            for call in (stub.CreateDataset, stub.PreviewMasking):
                with pytest.raises(grpc.RpcError) as err:
                    call(_requests(_header("deep", **_JSONL), DEEP_JSONL), timeout=60)
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
                assert bad_request_fields(err.value) == ["line 1"]
                assert f"limit of {MAX_JSON_DEPTH} levels" in (err.value.details() or "")
            assert served.proc.poll() is None, "the server died"
            assert _stored_objects(rt) == before  # no dataset row, no audit event, no temporary
            assert list(rt.blobs.digests()) == []
            # Still serving: the next upload is ingested.
            d = stub.CreateDataset(_requests(_header("after", k=1, quasi_identifiers=[]), _csv_bytes(pa.table({"a": [1, 2, 3]}))), timeout=60)
            assert d.rows == 3
    finally:
        rt.close()


# --- item 3: decompression bombs ------------------------------------------------------------------

@pytest.fixture
def ingestion(servers, sqlite_runtime):
    with channel(sqlite_runtime.home, "alice", servers["ingestion"]) as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        # Warm up: the first upload imports and allocates what every later one reuses.
        stub.PreviewMasking(_requests(_header("warm", **_PARQUET), _parquet(pa.table({"id": [1, 2], "note": ["a", "b"]}))), timeout=60)
        yield stub


def _one_huge_cell() -> bytes:
    cell = "a" * (100 << 20)
    data = _parquet(pa.table({"id": [1], "note": [cell]}), compression="zstd")
    del cell
    return data


def test_a_parquet_bomb_is_refused_before_it_is_decompressed(ingestion, sqlite_runtime) -> None:
    data = _one_huge_cell()
    assert len(data) < 16 << 10  # 100 MB in a few kilobytes
    before = _stored_objects(sqlite_runtime)
    for call in (ingestion.CreateDataset, ingestion.PreviewMasking):
        def upload(call=call) -> None:
            with pytest.raises(grpc.RpcError) as err:
                call(_requests(_header("bomb", **_PARQUET), data), timeout=60)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
            assert f"the limit is {limits.MAX_CELL_BYTES} bytes per cell" in (err.value.details() or "")

        # Before: the cell was decompressed, decoded and masked (hundreds of megabytes).
        assert _peak_rss_after(upload) < 32 << 20
    assert _stored_objects(sqlite_runtime) == before
    assert list(sqlite_runtime.blobs.digests()) == []


def _one_entry_dictionary(rows: int) -> bytes:
    """`rows` values naming one 1 MiB dictionary entry, without the Arrow schema that would
    make a reader keep them as a dictionary: a plain read decodes rows MiB."""
    column = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array(["d" * (1 << 20)]))
    return _parquet(pa.table({"id": list(range(rows)), "note": column}), compression="zstd",
                    dictionary_pagesize_limit=2 << 20, store_schema=False)


def test_a_dictionary_bomb_is_counted_before_it_is_decoded(tmp_path: pathlib.Path) -> None:
    # 64 GiB once decoded, read by a child process that may map 3 GiB in all. Before: the
    # reader decoded the first 65,536 rows in one go and the child failed for memory.
    data = _one_entry_dictionary(1 << 16)
    assert len(data) < 1 << 20
    child = _read_in_child(tmp_path, data, "parquet", memory_limit=3 << 30)
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.startswith("ResourceExhausted "), child.stdout
    assert f"the limit is {limits.MAX_BATCH_BYTES} bytes per batch" in child.stdout


def test_the_server_refuses_a_dictionary_bomb_without_its_memory_moving(ingestion, sqlite_runtime) -> None:
    data = _one_entry_dictionary(2048)  # 2 GiB decoded: what a regression here could survive
    before = _stored_objects(sqlite_runtime)

    def upload() -> None:
        with pytest.raises(grpc.RpcError) as err:
            ingestion.CreateDataset(_requests(_header("dictionary-bomb", **_PARQUET), data), timeout=60)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
        assert "bytes per batch" in (err.value.details() or "")

    assert _peak_rss_after(upload) < 32 << 20
    assert _stored_objects(sqlite_runtime) == before
    assert list(sqlite_runtime.blobs.digests()) == []

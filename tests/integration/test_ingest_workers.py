"""Large uploads are masked by worker processes: the result must be the in-process result,
an error in a worker must arrive as the same error, and the overlapping stages (prefetched
reads, background writes) must hand errors back and stop cleanly."""

from __future__ import annotations

import pathlib
import threading

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from privet.governance.datasets import limits
from privet.governance.datasets import workers as worker_pool
from privet.governance.datasets.formats import CsvDialect, spool
from privet.governance.datasets.pipeline import AnonymisationSpec, mask_upload
from privet.governance.datasets.prefetch import BackgroundWriter, prefetched
from privet.governance.datasets.synthetic import customer_table
from privet.governance.errors import FailedPrecondition, InvalidArgument
from privet.governance.masking import MaskingKeys, load_profile

_PROFILE = pathlib.Path(__file__).resolve().parents[2] / "policies" / "masking" / "default.yaml"
_KEYS = MaskingKeys.derive(b"worker-test-secret-of-32-bytes!!", key_id="workers/v1")


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "BLOCK_SIZE", 64 << 10)  # many batches from a small file


def _ingest(csv: pathlib.Path, tmp: pathlib.Path, workers: int, spec: AnonymisationSpec = AnonymisationSpec()) -> pa.Table:
    def chunks():
        yield csv.read_bytes()

    spooled = spool(chunks(), tmp, limit=1 << 30)
    try:
        masked = mask_upload(spooled, "csv", CsvDialect(), load_profile(_PROFILE), _KEYS, spec, tmp,
                             workers=workers, parallel_min_bytes=0)
    finally:
        spooled.discard()
    try:
        return pq.read_table(masked.path)
    finally:
        masked.discard()


@pytest.mark.parametrize("spec", [AnonymisationSpec(), AnonymisationSpec(("age", "zip", "sex"), k=5)])
def test_workers_mask_exactly_as_in_process(tmp_path: pathlib.Path, small_blocks: None, spec: AnonymisationSpec) -> None:
    csv = tmp_path / "customers.csv"
    pacsv.write_csv(customer_table(3000, seed=3), csv)
    in_process = _ingest(csv, tmp_path, workers=1, spec=spec)
    in_workers = _ingest(csv, tmp_path, workers=2, spec=spec)
    assert in_process.num_rows > 2000
    assert in_workers.equals(in_process)
    assert not list(tmp_path.glob("masking-*"))  # the batches' exchange directory is gone


def test_pii_in_a_later_batch_stops_ingestion_from_a_worker(tmp_path: pathlib.Path, small_blocks: None) -> None:
    table = customer_table(3000, seed=4)
    # A column of plain codes that turns into email addresses far past the first batch.
    codes = [f"code-{i}" for i in range(2500)] + [f"person{i}@example.org" for i in range(500)]
    csv = tmp_path / "late.csv"
    pacsv.write_csv(table.append_column("reference", pa.array(codes)), csv)
    with pytest.raises(FailedPrecondition, match="'reference' holds PII \\(EMAIL\\) in a later batch"):
        _ingest(csv, tmp_path, workers=2)
    assert not list(tmp_path.glob("*.parquet"))  # nothing left behind
    assert not list(tmp_path.glob("masking-*"))


def test_a_ragged_row_late_in_the_file_fails_with_its_line_and_leaves_nothing(tmp_path: pathlib.Path,
                                                                              small_blocks: None) -> None:
    csv = tmp_path / "ragged.csv"
    pacsv.write_csv(customer_table(3000, seed=5), csv)
    lines = csv.read_bytes().splitlines(keepends=True)
    lines[2500] = lines[2500].rstrip(b"\r\n") + b",extra\n"  # parsed by a late block, read ahead on a thread
    csv.write_bytes(b"".join(lines))
    with pytest.raises(InvalidArgument, match="ragged CSV line 2501"):
        _ingest(csv, tmp_path, workers=2)
    assert not list(tmp_path.glob("*.parquet"))
    assert not list(tmp_path.glob("masking-*"))


def test_batches_cross_to_the_workers_in_files_only_their_owner_reads(tmp_path: pathlib.Path) -> None:
    batch = pa.record_batch({"email": ["a@example.org", "b@example.org"]})
    path = tmp_path / "0.in"
    worker_pool._write(str(path), batch)
    assert path.stat().st_mode & 0o777 == 0o600  # raw values: private from the first byte
    assert worker_pool._take(str(path)).to_batches()[0].equals(batch)
    assert not path.exists()


def test_prefetched_yields_in_order_and_raises_where_the_source_did() -> None:
    def source():
        yield from range(5)
        raise ValueError("bad block")

    got = []
    with pytest.raises(ValueError, match="bad block"):
        for item in prefetched(source(), depth=2):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]


def test_prefetched_stops_its_thread_when_left_early() -> None:
    produced = []

    def source():
        for i in range(1000):
            produced.append(i)
            yield i

    before = threading.active_count()
    for item in prefetched(source()):
        if item == 3:
            break
    assert threading.active_count() == before
    assert len(produced) < 10


def test_background_writer_writes_in_order_and_reports_a_failed_write() -> None:
    written = []
    writer = BackgroundWriter(written.append)
    for i in range(10):
        writer.put(i)
    writer.close()
    assert written == list(range(10))

    def fail(item: int) -> None:
        raise OSError(f"disk full at {item}")

    broken = BackgroundWriter(fail)
    broken.put(1)
    with pytest.raises(OSError, match="disk full at 1"):
        broken.close()


def test_columns_masked_into_unique_values_skip_dictionary_and_statistics(tmp_path: pathlib.Path) -> None:
    csv = tmp_path / "customers.csv"
    pacsv.write_csv(customer_table(500, seed=5), csv)

    def chunks():
        yield csv.read_bytes()

    spooled = spool(chunks(), tmp_path, limit=1 << 30)
    masked = mask_upload(spooled, "csv", CsvDialect(), load_profile(_PROFILE), _KEYS, AnonymisationSpec(), tmp_path)
    spooled.discard()
    try:
        meta = pq.ParquetFile(masked.path).metadata.row_group(0)
        columns = {meta.column(i).path_in_schema: meta.column(i) for i in range(meta.num_columns)}
    finally:
        masked.discard()
    for name in ("email", "card", "notes"):  # hash, tokenise, scan
        assert not columns[name].is_stats_set and not columns[name].has_dictionary_page, name
    assert columns["age"].is_stats_set and columns["sex"].has_dictionary_page

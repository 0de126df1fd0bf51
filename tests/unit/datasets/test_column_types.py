"""A column's type may change after the first block (numbers, then `A-1234`; empty, then
text; a JSON key first seen later): the file still reads, with one type per column over the
whole file. A file that cannot be read names the column (and the line where known)."""

from __future__ import annotations

import contextlib
import json
import pathlib

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from privet.governance.datasets import limits
from privet.governance.datasets.formats import CsvDialect, spool
from privet.governance.datasets.pipeline import AnonymisationSpec, mask_upload
from privet.governance.masking import load_profile
from tests.unit.datasets._readers import BLOCK, KEYS, ROWS, csv, read, refused

_PROFILE = pathlib.Path(__file__).resolve().parents[3] / "policies" / "masking" / "default.yaml"


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "BLOCK_SIZE", BLOCK)








# --- CSV: identifiers written in digits stay text --------------------------------------------

def test_csv_leading_zero_postcodes_keep_their_zeros(tmp_path: pathlib.Path) -> None:
    # A column Arrow would read as integers: `02290` must not become 2290.
    table = read(tmp_path, csv("ref,amount", ["02290,5", "00036,7", "90210,8"]), "csv")
    assert table.schema.field("ref").type == pa.string()
    assert table["ref"].to_pylist() == ["02290", "00036", "90210"]
    assert table.schema.field("amount").type == pa.int64()  # a plain count stays a number


def test_csv_leading_zero_late_in_the_file_still_reads_the_column_as_text(
        tmp_path: pathlib.Path, small_blocks: None) -> None:
    rows = [f"{i},{10000 + i}" for i in range(ROWS)] + [f"{ROWS},00501"]
    table = read(tmp_path, csv("id,code", rows), "csv")
    assert table.schema.field("code").type == pa.string()
    assert table["code"][-1].as_py() == "00501" and table["code"][0].as_py() == "10000"
    assert table.schema.field("id").type == pa.int64()


def test_csv_columns_named_for_identifiers_read_as_text(tmp_path: pathlib.Path) -> None:
    # Digits without a leading zero, but the name says what they are.
    table = read(tmp_path, csv("zip,phone,age", ["90210,4155550100,41", "10001,2125550199,35"]), "csv")
    assert table.schema.field("zip").type == pa.string()
    assert table.schema.field("phone").type == pa.string()
    assert table.schema.field("age").type == pa.int64()


def test_csv_plus_sign_numbers_are_identifiers(tmp_path: pathlib.Path) -> None:
    table = read(tmp_path, csv("contact,n", ["+442071838750,1", "+14155550100,2"]), "csv")
    assert table["contact"].to_pylist() == ["+442071838750", "+14155550100"]


# --- CSV: types that change after the first block -------------------------------------------

def test_csv_numbers_then_text_reads_as_text(tmp_path: pathlib.Path, small_blocks: None) -> None:
    rows = [f"{i},{1000 + i},plan{i % 3}" for i in range(ROWS)] + [f"{ROWS},A-1234,plan1"]
    data = csv("id,order_ref,plan", rows)
    assert len(data) > 2 * BLOCK
    table = read(tmp_path, data, "csv")
    assert table.num_rows == ROWS + 1
    assert table.schema.field("order_ref").type == pa.string()
    assert table.schema.field("id").type == pa.int64()  # the columns that fit keep their type
    assert table["order_ref"][0].as_py() == "1000" and table["order_ref"][-1].as_py() == "A-1234"


def test_csv_empty_then_text_reads_as_text(tmp_path: pathlib.Path, small_blocks: None) -> None:
    rows = [f"{i},,plan{i % 3}" for i in range(ROWS)] + [f"{ROWS},hello,plan1"]
    table = read(tmp_path, csv("id,comment,plan", rows), "csv")
    assert table.schema.field("comment").type == pa.string()
    assert table["comment"][-1].as_py() == "hello" and table["comment"][0].as_py() == ""


def test_csv_types_are_those_of_the_whole_file(tmp_path: pathlib.Path, small_blocks: None) -> None:
    # Integers then a decimal; empty then integers; two columns that change in one late row.
    rows = [f"{i},{i},,{i}" for i in range(ROWS)] + [f"{ROWS},2.5,7,x-{ROWS}"]
    data = csv("id,amount,count,code", rows)
    table = read(tmp_path, data, "csv")
    whole = pacsv.read_csv(pa.py_buffer(data), read_options=pacsv.ReadOptions(block_size=len(data) + 1))
    assert table.schema == whole.schema
    assert table.schema.field("amount").type == pa.float64() and table.schema.field("count").type == pa.int64()
    assert table.equals(whole)


def test_csv_that_fits_its_first_block_reads_as_before(tmp_path: pathlib.Path, small_blocks: None) -> None:
    data = csv("id,name,score", [f"{i},n{i},{i / 7}" for i in range(ROWS)])
    table = read(tmp_path, data, "csv")
    assert table.equals(pacsv.read_csv(pa.py_buffer(data)))


def test_csv_without_a_header_changes_type_too(tmp_path: pathlib.Path, small_blocks: None) -> None:
    rows = [f"{i},{i}" for i in range(ROWS)] + [f"{ROWS},late"]
    table = read(tmp_path, csv(rows[0], rows[1:]), "csv", CsvDialect(header=False))
    assert table.column_names == ["f0", "f1"] and table.schema.field("f1").type == pa.string()
    assert table.num_rows == ROWS + 1


def test_csv_invalid_utf8_late_in_a_column_names_the_column(tmp_path: pathlib.Path, small_blocks: None) -> None:
    rows = [f"{i},name{i}" for i in range(ROWS)]
    data = csv("id,name", rows) + f"{ROWS},".encode() + b"caf\xe9\n"
    error = refused(tmp_path, data, "csv")
    assert error.field == "name" and "UTF-8" in error.description


@contextlib.contextmanager
def _ingested(tmp_path: pathlib.Path, data: bytes, fmt: str):
    """The upload through `mask_upload`, the masked dataset removed afterwards."""
    upload = spool([data], tmp_path, limit=1 << 30)
    try:
        masked = mask_upload(upload, fmt, CsvDialect(), load_profile(_PROFILE), KEYS, AnonymisationSpec(), tmp_path)
    finally:
        upload.discard()
    try:
        yield masked
    finally:
        masked.discard()


def test_csv_type_change_ingests_end_to_end(tmp_path: pathlib.Path, small_blocks: None) -> None:
    rows = [f"{i},{1000 + i},plan{i % 3}" for i in range(ROWS)] + [f"{ROWS},A-1234,plan1"]
    with _ingested(tmp_path, csv("id,order_ref,plan", rows), "csv") as masked:
        assert masked.report.rows_out == ROWS + 1
        assert pq.read_table(masked.path)["order_ref"][-1].as_py() == "A-1234"


# --- JSON Lines: keys and types that appear after the first block ---------------------------

def _jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def test_jsonl_null_then_text_reads_as_text(tmp_path: pathlib.Path, small_blocks: None) -> None:
    records = [{"id": i, "plan": f"plan{i % 3}", "note": None} for i in range(ROWS)]
    table = read(tmp_path, _jsonl(records + [{"id": ROWS, "plan": "x", "note": "call back"}]), "jsonl")
    assert table.schema.field("note").type == pa.string()
    assert table["note"][-1].as_py() == "call back" and table.num_rows == ROWS + 1


def test_jsonl_key_first_seen_later_is_a_column(tmp_path: pathlib.Path, small_blocks: None) -> None:
    records = [{"id": i, "plan": f"plan{i % 3}"} for i in range(ROWS)]
    table = read(tmp_path, _jsonl(records + [{"id": ROWS, "plan": "x", "score": 2.5}]), "jsonl")
    assert table.column_names == ["id", "plan", "score"]  # in the order first seen
    assert table["score"].null_count == ROWS and table["score"][-1].as_py() == 2.5


def test_jsonl_integers_then_decimals_read_as_floats(tmp_path: pathlib.Path, small_blocks: None) -> None:
    records = [{"id": i, "x": i} for i in range(ROWS)] + [{"id": ROWS, "x": 0.5}]
    table = read(tmp_path, _jsonl(records), "jsonl")
    assert table.schema.field("x").type == pa.float64() and table["x"][-1].as_py() == 0.5


def test_jsonl_dates_then_other_text_read_as_text(tmp_path: pathlib.Path, small_blocks: None) -> None:
    records = [{"id": i, "when": "2024-01-02"} for i in range(ROWS)] + [{"id": ROWS, "when": "soon"}]
    table = read(tmp_path, _jsonl(records), "jsonl")
    assert table.schema.field("when").type == pa.string() and table["when"][-1].as_py() == "soon"


def test_jsonl_type_change_ingests_end_to_end(tmp_path: pathlib.Path, small_blocks: None) -> None:
    records = [{"id": i, "plan": f"plan{i % 3}", "note": None} for i in range(ROWS)]
    data = _jsonl(records + [{"id": ROWS, "plan": "x", "note": "call back", "extra": 1}])
    with _ingested(tmp_path, data, "jsonl") as masked:
        assert masked.report.rows_out == ROWS + 1
        assert [c.column for c in masked.report.columns] == ["id", "plan", "note", "extra"]


def test_jsonl_number_then_text_in_a_later_block_names_column_and_line(tmp_path: pathlib.Path, small_blocks: None) -> None:
    records = [{"id": i, "ref": i} for i in range(ROWS)] + [{"id": ROWS}, {"id": ROWS + 1, "ref": "A-1"}]
    error = refused(tmp_path, _jsonl(records), "jsonl")
    assert error.field == "ref"
    assert f"line {ROWS + 2}:" in error.description


def test_jsonl_number_then_text_in_one_block_names_column_and_line(tmp_path: pathlib.Path) -> None:
    error = refused(tmp_path, b'{"a": 1}\n\n{"a": 2}\n{"a": "x"}\n', "jsonl")
    assert error.field == "a" and error.description.startswith("line 4:")

"""Repeated or blank column names are refused up front, in every format (CSV, JSON Lines,
Parquet), naming the column, before ingestion or masking writes anything."""

from __future__ import annotations

import pathlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from privet.governance.datasets import limits
from privet.governance.datasets.formats import CsvDialect, spool
from privet.governance.datasets.pipeline import AnonymisationSpec, mask_upload
from privet.governance.errors import InvalidArgument
from privet.governance.masking import load_profile
from privet.governance.masking.profile import apply_profile
from tests.unit.datasets._readers import BLOCK, KEYS, ROWS, csv, refused

_PROFILE = pathlib.Path(__file__).resolve().parents[3] / "policies" / "masking" / "default.yaml"








# --- repeated or blank column names -----------------------------------------------------------

@pytest.mark.parametrize("blocks", ["one", "several"])
def test_a_repeated_csv_header_is_refused_naming_the_column(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                                                             blocks: str) -> None:
    if blocks == "several":
        monkeypatch.setattr(limits, "BLOCK_SIZE", BLOCK)
    data = csv("email,email,n", [f"a{i}@example.com,b{i}@example.com,{i}" for i in range(ROWS)])
    error = refused(tmp_path, data, "csv")
    assert error.field == "email" and "more than once" in error.description


def test_a_blank_csv_header_is_refused(tmp_path: pathlib.Path) -> None:
    error = refused(tmp_path, csv("id,,n", ["1,2,3", "4,5,6"]), "csv")
    assert error.field == "column #2"


def test_a_repeated_json_key_is_refused_naming_it_and_the_line(tmp_path: pathlib.Path) -> None:
    data = b'{"email": "a@example.com"}\n{"email": "a@example.com", "email": "b@example.com"}\n'
    error = refused(tmp_path, data, "jsonl")
    assert error.field == "email" and error.description.startswith("line 2:")


def test_a_blank_json_key_is_refused(tmp_path: pathlib.Path) -> None:
    assert refused(tmp_path, b'{"id": 1, "": 2}\n', "jsonl").field == "column #2"


def test_repeated_parquet_columns_are_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.table([pa.array([1, 2]), pa.array(["a@example.com", "b@example.com"]), pa.array(["c", "d"])],
                            names=["id", "email", "email"]), path)
    error = refused(tmp_path, path.read_bytes(), "parquet")
    assert error.field == "email"


def test_a_repeated_header_stops_ingestion_before_anything_is_written(tmp_path: pathlib.Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    upload = spool([csv("email,email,n", ["a@example.com,b@example.com,1"])], tmp_path, limit=1 << 20)
    try:
        with pytest.raises(InvalidArgument) as err:
            mask_upload(upload, "csv", CsvDialect(), load_profile(_PROFILE), KEYS, AnonymisationSpec(), workdir)
    finally:
        upload.discard()
    assert err.value.field == "email"
    assert not list(workdir.iterdir())


def test_masking_a_table_with_repeated_columns_is_invalid_argument() -> None:
    table = pa.table([pa.array(["a@example.com"]), pa.array(["b@example.com"])], names=["email", "email"])
    with pytest.raises(InvalidArgument) as err:
        apply_profile(table, load_profile(_PROFILE), KEYS)
    assert err.value.field == "email"

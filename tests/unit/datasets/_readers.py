"""What the reader tests share: reading bytes as an upload, a refusal, small CSVs."""

from __future__ import annotations

import pathlib

import pyarrow as pa
import pytest

from privet.governance.datasets.formats import CsvDialect, read_batches, spool
from privet.governance.errors import InvalidArgument
from privet.governance.masking import MaskingKeys

KEYS = MaskingKeys.derive(b"formats-test-secret-of-32-bytes!", key_id="formats/v1")
BLOCK = 16 << 10
ROWS = 3000  # ~40 KB of CSV: several 16 KiB blocks


def read(tmp_path: pathlib.Path, data: bytes, fmt: str, dialect: CsvDialect = CsvDialect()) -> pa.Table:
    upload = spool([data], tmp_path, limit=1 << 30)
    try:
        batches = list(read_batches(upload, fmt, dialect))
    finally:
        upload.discard()
    assert len({b.schema for b in batches}) == 1  # one schema for every batch
    return pa.Table.from_batches(batches)


def refused(tmp_path: pathlib.Path, data: bytes, fmt: str, dialect: CsvDialect = CsvDialect()) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as err:
        read(tmp_path, data, fmt, dialect)
    return err.value


def csv(header: str, rows: list[str]) -> bytes:
    return (header + "\n" + "\n".join(rows) + "\n").encode()

"""An unterminated quoted field is refused before parsing: '"' is counted as the upload is
spooled (no second read of the file); another quote character is counted from the file."""

from __future__ import annotations

import pathlib

import pytest

from privet.governance.datasets.formats import CsvDialect, read_batches, spool
from privet.governance.errors import InvalidArgument


def _spooled(tmp_path: pathlib.Path, data: bytes):
    return spool(iter([data[:7], data[7:]]), tmp_path, limit=1 << 20)


def test_spooling_counts_double_quotes(tmp_path: pathlib.Path) -> None:
    assert _spooled(tmp_path, b'a,b\n"x, y",2\n"say ""hi""",3\n').double_quotes == 8


@pytest.mark.parametrize("data,dialect", [
    (b'a,b\n1,"open\n2,3\n', CsvDialect()),
    (b"a;b\n1;'open\n2;3\n", CsvDialect(delimiter=";", quote_char="'")),
])
def test_an_odd_quote_count_is_an_unterminated_field(tmp_path: pathlib.Path, data: bytes, dialect: CsvDialect) -> None:
    with pytest.raises(InvalidArgument, match="unterminated quoted field"):
        list(read_batches(_spooled(tmp_path, data), "csv", dialect))


@pytest.mark.parametrize("data,dialect", [
    (b'a,b\n1,"x, y"\n2,3\n', CsvDialect()),
    (b"a;b\n1;'x; y'\n2;3\n", CsvDialect(delimiter=";", quote_char="'")),
])
def test_balanced_quotes_parse(tmp_path: pathlib.Path, data: bytes, dialect: CsvDialect) -> None:
    rows = sum(b.num_rows for b in read_batches(_spooled(tmp_path, data), "csv", dialect))
    assert rows == 2

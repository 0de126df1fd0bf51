"""Fuzz target: the upload readers (governance.datasets.formats: `spool` + `read_batches`)
for CSV (with the dialects a header may name), JSON Lines and Parquet.

Contract: any bytes either read as record batches or raise InvalidArgument or ResourceExhausted (the file is
bad, or empty). Nothing else escapes, and no input hangs."""

from __future__ import annotations

if __name__ == "__main__":
    import atheris

    with atheris.instrument_imports(include=["governance"]):
        from privet.governance.datasets import formats
else:
    from privet.governance.datasets import formats

import pathlib
import shutil
import tempfile

from privet.governance.errors import InvalidArgument, ResourceExhausted
from tests.security.fuzz._harness import Cursor, KnownGaps, fuzz_main

# Dialects a caller may legitimately name: detect, or one of the usual single characters,
# and ASCII-compatible encodings. (Names that are not a single character or not a codec
# are a separate, known gap: see tests/security/test_fuzz.py.)
DELIMITERS = ("", ",", ";", "\t", "|")
QUOTES = ("", '"', "'")
ENCODINGS = ("", "utf-8", "latin-1")
LIMIT = 1 << 20

_SPOOL = pathlib.Path(tempfile.mkdtemp(prefix="privet-fuzz-formats-"))

FORMATS = ("csv", "jsonl", "parquet", "csv")


def _parquet_seed() -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    table = pa.table({"id": list(range(40)), "email": [f"u{i}@example.com" for i in range(40)], "score": [i / 7 for i in range(40)]})
    pq.write_table(table, out, row_group_size=16)
    return out.getvalue()


SEEDS = [
    b"\x00\x00name,email,age\nann,ann@example.com,31\nbob,bob@example.com,42\n",
    b"\x08\x00a;b;c\n1;2;3\n\"x;y\";5;6\n",
    b"\x02\x00" + _parquet_seed(),
    b"\x01\x00{\"a\": 1, \"b\": \"x\"}\n{\"a\": 2, \"b\": null}\n",
    b"\x01\x00{\"a\": [1, 2], \"n\": {\"k\": true}}\n\n{\"a\": [], \"n\": {\"k\": false}}\n",
    b"\x00\x01\"quoted\nnewline\",2\n3,4\n",
]


KNOWN_GAPS = KnownGaps()  # none open: every input parses or raises the documented error


def check(data: bytes) -> None:
    cursor = Cursor(data)
    options = cursor.byte()
    fmt = FORMATS[options & 3]
    dialect = formats.CsvDialect(
        delimiter=DELIMITERS[(options >> 2) % len(DELIMITERS)],
        quote_char=QUOTES[(options >> 5) % len(QUOTES)],
        encoding=cursor.pick(ENCODINGS),
        header=not options & 0x80,
    )
    body = cursor.rest()
    step = max(1, len(body) // 3)
    try:
        spooled = formats.spool([body[i : i + step] for i in range(0, len(body), step)], _SPOOL, limit=LIMIT)
    except InvalidArgument:
        return  # the empty upload
    try:
        for batch in formats.read_batches(spooled, fmt, dialect):
            assert batch.num_rows > 0
    except (InvalidArgument, ResourceExhausted):  # refused: malformed, or past a size limit
        pass
    except Exception as exc:
        if exc not in KNOWN_GAPS:
            raise
    finally:
        spooled.discard()


def cleanup() -> None:
    shutil.rmtree(_SPOOL, ignore_errors=True)


if __name__ == "__main__":
    try:
        fuzz_main(check)
    finally:
        cleanup()

"""Uploads as Arrow record batches: spool the byte stream, then read it, in batches, by format.

The one entry point for reading an upload (`spool`, then `read_batches`). Each format has
its own module: `csv_reader`, `jsonl_reader`, `parquet_reader`; what reading may cost is
`limits`, spooling is `spooling`. Every parse problem becomes InvalidArgument naming the row
or column at fault, so a caller can fix its file; nothing keeps more than one batch in memory.

The limits are re-exported here for reading; to change one (a test, a benchmark), set it
where the readers read it, on `limits`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from privet.governance.datasets import limits
from privet.governance.datasets.columns import column_names, require_named_columns
from privet.governance.datasets.csv_reader import CsvDialect, csv_batches
from privet.governance.datasets.jsonl_reader import jsonl_batches
from privet.governance.datasets.limits import (
    BLOCK_SIZE,
    MAX_BATCH_BYTES,
    MAX_CELL_BYTES,
    MAX_DECODED_BYTES,
    MAX_JSON_DEPTH,
    MAX_PARQUET_PAGES,
    MAX_PARQUET_SCHEMA_DEPTH,
)
from privet.governance.datasets.parquet_reader import parquet_batches
from privet.governance.datasets.spooling import Spooled, spool
from privet.governance.errors import InvalidArgument

__all__ = [
    "BLOCK_SIZE",
    "FORMATS",
    "MAX_BATCH_BYTES",
    "MAX_CELL_BYTES",
    "MAX_DECODED_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_PARQUET_PAGES",
    "MAX_PARQUET_SCHEMA_DEPTH",
    "CsvDialect",
    "Spooled",
    "read_batches",
    "spool",
]

FORMATS = ("csv", "jsonl", "parquet")


def read_batches(spooled: Spooled, fmt: str, dialect: CsvDialect = CsvDialect()) -> Iterator[pa.RecordBatch]:
    """Record batches of the upload, streaming. Raises InvalidArgument naming what is wrong
    (an unknown `fmt` included, or a file without data rows), ResourceExhausted past a limit."""
    # A file of more than one block is read through once for its types first: Arrow's
    # streaming readers take them from the first block alone.
    several_blocks = spooled.size > limits.BLOCK_SIZE
    if fmt == "csv":
        batches = csv_batches(spooled.path, dialect, spooled.double_quotes, whole_file_types=several_blocks)
    elif fmt == "jsonl":
        batches = jsonl_batches(spooled.path, whole_file_schema=several_blocks)
    elif fmt == "parquet":
        batches = parquet_batches(spooled.path)
    else:
        raise InvalidArgument("header.format", f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    empty = True
    for number, batch in enumerate(batches):
        if number == 0:  # every batch has the first one's schema
            limits.check_width(len(batch.schema))
            require_named_columns(column_names(batch.schema))
        if batch.num_rows:
            empty = False
            yield batch
    if empty:
        raise InvalidArgument("chunk", "the file has no data rows")


# One value per name: the limits (lowered by tests and benchmarks on this module) and the
# private knobs and pieces the reader tests reach for through it.

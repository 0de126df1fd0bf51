"""What an upload may cost to read: the bounds every reader (CSV, JSON Lines, Parquet) keeps.

Each is ResourceExhausted naming the limit when crossed; docs/operators.md, "Limits on
untrusted input", lists them. The readers read them here when used (`limits.BLOCK_SIZE`,
never a copy taken at import), so that a test may lower one.
"""

from __future__ import annotations

from privet.governance.errors import ResourceExhausted
from privet.governance.jsonlimits import MAX_JSON_DEPTH

__all__ = [
    "ARROW_STRADDLING",
    "BLOCK_SIZE",
    "MAX_BATCH_BYTES",
    "MAX_CELL_BYTES",
    "MAX_DECODED_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_PARQUET_PAGES",
    "MAX_PARQUET_SCHEMA_DEPTH",
    "line_too_long",
]

# Bytes per CSV/JSON block: bounds memory, keeps batches large enough to vectorise. Also the
# longest line (JSON Lines) or row (CSV) an upload may have: Arrow's readers need one to fit a block.
BLOCK_SIZE = 8 << 20

# What an upload may cost once decoded, beyond its own size (privet.toml's max_upload_bytes,
# checked as it streams in). Text formats decode to about their own size (a cell fits its
# line, a batch its block); these bound Parquet, whose compression and dictionaries let a few
# kilobytes stand for gigabytes.
MAX_CELL_BYTES = BLOCK_SIZE  # one value: no more than a line of a text format may hold
MAX_BATCH_BYTES = 256 << 20  # one record batch, decoded
MAX_DECODED_BYTES = 16 << 30  # a whole upload, decoded: four times the default max_upload_bytes
# Levels a Parquet schema may nest (Arrow's own default, stated here): its reader recurses per level.
MAX_PARQUET_SCHEMA_DEPTH = 100
# Columns of one upload: each is classified (a sample through every detector, the names
# model on its short text), so width is cost; 5,000 columns held a server for 20 minutes.
MAX_COLUMNS = 1024
# Pages a Parquet file may have: each header is read before Arrow reads the file (real files
# have a few per megabyte; one of tiny pages would cost time out of all proportion).
MAX_PARQUET_PAGES = 1 << 20

# What Arrow's text readers say when a line or row does not fit a block.
ARROW_STRADDLING = "straddling object straddles two block boundaries"


def check_width(columns: int) -> None:
    """ResourceExhausted for an upload wider than MAX_COLUMNS."""
    if columns > MAX_COLUMNS:
        raise ResourceExhausted(f"the file has {columns} columns, more than the limit of {MAX_COLUMNS}")


def line_too_long(what: str) -> ResourceExhausted:
    """The error for a line or row past BLOCK_SIZE bytes; `what` names it ("line 7 is")."""
    return ResourceExhausted(f"{what} longer than the limit of {BLOCK_SIZE} bytes per line")

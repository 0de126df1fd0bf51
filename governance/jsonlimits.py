"""Bounds on JSON from callers, checked before any parser sees it.

A JSON parser recurses, or builds nested values, once per `[` or `{`: pyarrow's JSON
reader overflows its C stack somewhere below 20,000 levels (SIGSEGV: the whole process
goes, every service in it), Python's `json` raises RecursionError near 1,000. No real
record needs more than a handful, so nesting is counted first, in one linear pass that
numpy vectorises (about as fast as reading the bytes), and input past the limit is
refused naming the field and the limit.

The count is never below what a parser sees, on valid or invalid input: brackets inside
strings are skipped (a quote after an odd run of backslashes is escaped), a closing
bracket never takes the depth below zero, and in JSON Lines mode a line break ends a string,
as it does for Arrow, which refuses a raw line break inside a string and parses each block of
lines on its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from privet.governance.errors import InvalidArgument

__all__ = ["MAX_JSON_DEPTH", "PIECE_BYTES", "DuplicateKey", "JsonDepthScanner", "check_json_depth", "object_without_duplicates"]

# Nesting any JSON from a caller may have: every `[` or `{` counts, the outermost included
# (`{"a": [1]}` is 2 deep). Data records, safetensors headers (3), preprocessing metadata and
# audit bundles all stay far below; a parser stays far from its stack's end.
MAX_JSON_DEPTH = 64

# Bytes scanned at a time: the scan holds a few arrays of positions per piece (tens of bytes
# per byte of brackets), so long text goes through in pieces of this size.
PIECE_BYTES = 256 << 10

_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPEN = (ord("["), ord("{"))
_CLOSE = (ord("]"), ord("}"))
_LINE_BREAKS = (ord("\n"), ord("\r"))


class DuplicateKey(ValueError):
    """An object names one key twice."""


def object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads(..., object_pairs_hook=object_without_duplicates)`: json keeps the last of
    two equal keys, another reader (or a reader's eye) may keep the first; a document two
    readers understand differently is refused (DuplicateKey, a ValueError)."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise DuplicateKey(f"duplicate JSON key {key!r}")
        obj[key] = value
    return obj


def check_json_depth(data: bytes | str, *, field: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise InvalidArgument(field, ...) naming `limit` when the JSON text `data` nests more
    than `limit` levels. Linear time, no recursion; `data` need not be valid JSON (the
    parser that runs next judges that). Requires limit >= 0."""
    raw = memoryview(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data).cast("B")
    scanner = JsonDepthScanner(limit=limit)
    for start in range(0, len(raw), PIECE_BYTES):
        offset = scanner.feed(raw[start:start + PIECE_BYTES])
        if offset is not None:
            raise InvalidArgument(field, f"JSON nested deeper than the limit of {limit} levels (at byte {start + offset})")


class JsonDepthScanner:
    """`check_json_depth` over a text that arrives in pieces: `feed` each piece in order.

    `json_lines`: the text is JSON Lines read by Arrow (a line break ends any string). The
    depth still carries across lines: a record may span lines within one of Arrow's blocks.
    """

    def __init__(self, *, limit: int = MAX_JSON_DEPTH, json_lines: bool = False) -> None:
        if limit < 0:
            raise ValueError("limit must not be negative")
        self.limit = limit
        self.depth = 0  # open containers at the end of what was fed
        self._json_lines = json_lines
        self._in_string = False
        self._odd_backslashes = False  # the text so far ends in an odd run of backslashes

    def feed(self, piece: bytes | bytearray | memoryview) -> int | None:
        """The offset in `piece` of the first `[` or `{` that opens level limit + 1, or None.
        After a hit the scanner's state is undefined: the text is refused."""
        # The state carried from the last piece is written as bytes in front of this one:
        # a quote that opens the string it was in, a backslash that escapes what follows.
        carry = (b'"' if self._in_string else b"") + (b"\\" if self._odd_backslashes else b"")
        data = np.frombuffer(carry + bytes(piece), dtype=np.uint8)
        if not data.size:
            return None
        quotes = _unescaped_quotes(data)
        opens = (data == _OPEN[0]) | (data == _OPEN[1])
        brackets = np.flatnonzero(opens | (data == _CLOSE[0]) | (data == _CLOSE[1]))
        breaks = np.flatnonzero((data == _LINE_BREAKS[0]) | (data == _LINE_BREAKS[1])) if self._json_lines else None
        # Quotes before each bracket, counted from its line's start in JSON Lines: odd = in a string.
        quotes_before = np.searchsorted(quotes, brackets)
        if breaks is not None and breaks.size:
            line_start = _last_before(breaks, brackets)
            quotes_before -= np.searchsorted(quotes, line_start)
        outside = brackets[quotes_before % 2 == 0]
        hit = None
        if outside.size:
            steps = np.where(opens[outside], 1, -1).astype(np.int64)
            walk = self.depth + np.cumsum(steps)
            # A close at depth 0 is the parser's error, never a negative depth: the walk
            # reflected at zero is the plain walk less the lowest point it reached below zero.
            levels = walk - np.minimum(np.minimum.accumulate(walk), 0)
            over = np.flatnonzero(levels > self.limit)
            if over.size:
                hit = int(outside[over[0]]) - len(carry)
            self.depth = int(levels[-1])
        tail_start = int(breaks[-1]) + 1 if breaks is not None and breaks.size else 0
        self._in_string = bool((quotes.size - np.searchsorted(quotes, tail_start)) % 2)
        self._odd_backslashes = bool(_trailing_run(data, _BACKSLASH) % 2)
        return hit


def _last_before(sorted_positions: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """For each of `positions`, the last of `sorted_positions` below it (-1 where none)."""
    index = np.searchsorted(sorted_positions, positions) - 1
    return np.where(index >= 0, sorted_positions[np.maximum(index, 0)], -1)


def _unescaped_quotes(data: np.ndarray) -> np.ndarray:
    """Positions of the `"` bytes that a run of an even number of backslashes (or none) precedes."""
    quotes = np.flatnonzero(data == _QUOTE)
    slashes = np.flatnonzero(data == _BACKSLASH)
    if not quotes.size or not slashes.size:
        return quotes
    # Where the backslash run that each backslash belongs to starts.
    run_start = np.maximum.accumulate(np.where(np.diff(slashes, prepend=-2) != 1, slashes, 0))
    previous = quotes - 1
    index = np.minimum(np.searchsorted(slashes, previous), slashes.size - 1)
    after_run = slashes[index] == previous
    escaped = after_run & ((quotes - run_start[index]) % 2 == 1)
    unescaped: np.ndarray = quotes[~escaped]
    return unescaped


def _trailing_run(data: np.ndarray, code: int) -> int:
    others = np.flatnonzero(data != code)
    return int(data.size - 1 - others[-1]) if others.size else int(data.size)

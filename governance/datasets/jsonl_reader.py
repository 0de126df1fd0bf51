"""JSON Lines uploads as Arrow record batches: a depth and line-length check, then Arrow's reader.

A record nested deeper than MAX_JSON_DEPTH is refused before Arrow parses it (its reader
would overflow its stack and kill the process); every parse problem becomes InvalidArgument
naming the line or column at fault.
"""

from __future__ import annotations

import itertools
import json
import pathlib
import re
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from privet.governance.datasets import limits
from privet.governance.errors import InvalidArgument, PrivetError
from privet.governance.jsonlimits import MAX_JSON_DEPTH, PIECE_BYTES, JsonDepthScanner

__all__ = ["jsonl_batches"]

_SCAN_PIECE = PIECE_BYTES  # bytes per step of the JSON Lines pre-check


def _check_jsonl(path: pathlib.Path) -> None:
    """Refuse, before Arrow parses any of it, a JSON Lines file with a record nested deeper
    than MAX_JSON_DEPTH (InvalidArgument naming the line: Arrow's reader would overflow its
    stack and kill the process) or a line longer than BLOCK_SIZE bytes, its line break
    included (ResourceExhausted). One pass, a piece at a time: a line never has to fit memory."""
    scanner = JsonDepthScanner(limit=MAX_JSON_DEPTH, json_lines=True)
    line, line_start, offset = 1, 0, 0  # the current line's number and first byte's offset
    with open(path, "rb") as f:
        while piece := f.read(_SCAN_PIECE):
            hit = scanner.feed(piece)
            ends = np.flatnonzero(np.frombuffer(piece, dtype=np.uint8) == ord("\n")) + offset
            if hit is not None:
                number = line + int(np.searchsorted(ends, offset + hit))
                raise InvalidArgument(f"line {number}", f"JSON nested deeper than the limit of {MAX_JSON_DEPTH} levels")
            lengths = ends + 1 - np.concatenate(([line_start], ends[:-1] + 1))
            long = np.flatnonzero(lengths > limits.BLOCK_SIZE)
            if long.size:
                raise limits.line_too_long(f"line {line + int(long[0])} is")
            if ends.size:
                line, line_start = line + ends.size, int(ends[-1]) + 1
            offset += len(piece)
            if offset - line_start > limits.BLOCK_SIZE:
                raise limits.line_too_long(f"line {line} is")


def jsonl_batches(path: pathlib.Path, *, whole_file_schema: bool = False) -> Iterator[pa.RecordBatch]:
    """The file's batches; `whole_file_schema` reads it through once first for the schema."""
    _check_jsonl(path)
    schema = _jsonl_schema(path) if whole_file_schema else None
    # Without one, Arrow's streaming reader fixes the schema from the first block, and a key
    # first seen later, or a column empty at first and text later, fails the read.
    parse = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error") if schema is not None else None
    try:
        reader = pajson.open_json(path, read_options=pajson.ReadOptions(block_size=limits.BLOCK_SIZE), parse_options=parse)
        yield from reader
    except pa.ArrowInvalid as exc:
        # A file of one block was read as one: Arrow's row numbers count from its start.
        raise _json_error(exc, path.read_bytes() if schema is None else None, path) from exc


def _jsonl_schema(path: pathlib.Path) -> pa.Schema:
    """The schema of the whole file: each block's, merged (a column empty at first takes its
    later type, integers and decimals make floats; keys keep the order first seen)."""
    fields: dict[str, pa.Field] = {}
    for block, first_line in _jsonl_blocks(path):
        try:
            schema = pajson.read_json(pa.py_buffer(block), read_options=pajson.ReadOptions(block_size=limits.BLOCK_SIZE)).schema
        except pa.ArrowInvalid as exc:
            raise _json_block_error(exc, block, first_line, path) from exc
        for field in schema:
            known = fields.get(field.name)
            fields[field.name] = field if known is None else _merge_json_field(known, field, block, first_line)
    return pa.schema(list(fields.values()))


def _jsonl_blocks(path: pathlib.Path) -> Iterator[tuple[bytes, int]]:
    """The file in blocks of whole lines, about BLOCK_SIZE bytes each (a longer line makes a
    longer block, as in Arrow's reader), with the number of each block's first line."""
    line, pending = 1, bytearray()
    with open(path, "rb") as f:
        while chunk := f.read(limits.BLOCK_SIZE):
            pending += chunk
            end = pending.rfind(b"\n") + 1
            if end == 0:
                continue
            block = bytes(pending[:end])
            del pending[:end]
            if not block.isspace():
                yield block, line
            line += block.count(b"\n")
    if pending and not pending.isspace():
        yield bytes(pending), line


def _merge_json_field(known: pa.Field, later: pa.Field, block: bytes, first_line: int) -> pa.Field:
    try:
        return pa.unify_schemas([pa.schema([known]), pa.schema([later])], promote_options="permissive").field(0)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        pass
    kinds = (known.type, later.type)
    if any(pa.types.is_string(t) for t in kinds) and any(pa.types.is_timestamp(t) for t in kinds):
        return known.with_type(pa.string())  # dates at first, other text later: text, as Arrow infers it
    line = _first_line_with(block, first_line, known.name)
    raise InvalidArgument(known.name, f"line {line}: holds {later.type} values where earlier lines hold {known.type}; "
                                      "a column holds one type")


def _first_line_with(block: bytes, first_line: int, column: str) -> int | str:
    for number, raw in enumerate(block.split(b"\n"), start=first_line):
        try:
            value = json.loads(raw).get(column) if raw.strip() else None
        except (ValueError, AttributeError, RecursionError):
            continue
        if value is not None:
            return number
    return "?"


def _json_block_error(exc: pa.ArrowInvalid, block: bytes, first_line: int, path: pathlib.Path) -> PrivetError:
    try:  # again as one chunk, so that the row Arrow names counts from the block's start
        pajson.read_json(pa.py_buffer(block), read_options=pajson.ReadOptions(use_threads=False, block_size=len(block)))
    except pa.ArrowInvalid as again:
        exc = again
    return _json_error(exc, block, path, first_line)


# "JSON parse error: Column(/note) changed from null to string in row 132863"
_JSON_COLUMN_ERROR = re.compile(r"Column\(/([^/)]*)[^)]*\) (.+?) in row (\d+)")


def _json_error(exc: pa.ArrowInvalid, block: bytes | None, path: pathlib.Path, first_line: int = 1) -> PrivetError:
    """InvalidArgument naming the column at fault and, where `block` (the text Arrow read as
    one, starting at `first_line`) is known, its line; else the first line that is not a JSON object."""
    if limits.ARROW_STRADDLING in str(exc):  # _check_jsonl refuses such a line first; kept for any it misses
        return limits.line_too_long("a line is")
    found = _JSON_COLUMN_ERROR.search(str(exc))
    if found is None:
        line = _first_bad_json_line(path)
        return InvalidArgument(line or "chunk", f"JSON Lines does not parse: {exc}")
    column, what, row = found.group(1), found.group(2), int(found.group(3))
    where = f"line {_record_line(block, row, first_line)}: " if block is not None else ""
    if what == "was specified twice":
        return InvalidArgument(column, f"{where}the key {column!r} appears twice in one object; column names must be unique")
    return InvalidArgument(column, f"{where}JSON Lines does not parse: {what}")


def _record_line(block: bytes, row: int, first_line: int) -> int | str:
    # Arrow numbers the rows from 0 and skips blank lines.
    records = (number for number, raw in enumerate(block.split(b"\n"), start=first_line) if raw.strip())
    return next(itertools.islice(records, row, None), "?")


def _first_bad_json_line(path: pathlib.Path) -> str | None:
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                if not isinstance(json.loads(raw), dict):
                    return f"line {number}"
            except (ValueError, RecursionError):
                return f"line {number}"
    return None


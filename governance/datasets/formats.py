"""Uploads as Arrow record batches: spool the byte stream, detect the dialect, read in batches.

Every parse problem becomes InvalidArgument naming the row or column at fault, so a caller can
fix its file; nothing here keeps more than one batch in memory.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import itertools
import json
import mmap
import os
import pathlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from privet.governance.errors import InvalidArgument, PrivetError, ResourceExhausted
from privet.governance.jsonlimits import MAX_JSON_DEPTH, PIECE_BYTES, JsonDepthScanner
from privet.governance.masking.profile import require_unique_columns
from privet.governance.store.blobs import temporary_name

__all__ = [
    "BLOCK_SIZE",
    "FORMATS",
    "MAX_BATCH_BYTES",
    "MAX_CELL_BYTES",
    "MAX_DECODED_BYTES",
    "MAX_PARQUET_PAGES",
    "MAX_PARQUET_SCHEMA_DEPTH",
    "CsvDialect",
    "Spooled",
    "read_batches",
    "spool",
]

FORMATS = ("csv", "jsonl", "parquet")
# Bytes per CSV/JSON block: bounds memory, keeps batches large enough to vectorise. Also the
# longest line (JSON Lines) or row (CSV) an upload may have: Arrow's readers need one to fit a block.
BLOCK_SIZE = 8 << 20

# What an upload may cost once decoded, beyond its own size (privet.toml's max_upload_bytes,
# checked as it streams in). Each is ResourceExhausted naming the limit; docs/operators.md,
# "Limits on untrusted input", lists them. Text formats decode to about their own size (a cell
# fits its line, a batch its block); these bound Parquet, whose compression and dictionaries let
# a few kilobytes stand for gigabytes. Read when used, so that a test may lower one.
MAX_CELL_BYTES = BLOCK_SIZE  # one value: no more than a line of a text format may hold
MAX_BATCH_BYTES = 256 << 20  # one record batch, decoded
MAX_DECODED_BYTES = 16 << 30  # a whole upload, decoded: four times the default max_upload_bytes
# Levels a Parquet schema may nest (Arrow's own default, stated here): its reader recurses per level.
MAX_PARQUET_SCHEMA_DEPTH = 100
# Pages a Parquet file may have: each header is read before Arrow reads the file (real files
# have a few per megabyte; one of tiny pages would cost time out of all proportion).
MAX_PARQUET_PAGES = 1 << 20


@dataclass(frozen=True)
class CsvDialect:
    delimiter: str = ""  # empty = detect
    quote_char: str = ""  # empty = detect
    encoding: str = ""  # empty = strict UTF-8
    header: bool = True

    def __post_init__(self) -> None:
        for field, value in (("header.csv.delimiter", self.delimiter), ("header.csv.quote_char", self.quote_char)):
            if value and (len(value) != 1 or not value.isascii() or value in "\r\n"):
                raise InvalidArgument(field, "must be empty (detect) or one ASCII character other than a line break")
        if self.encoding:
            try:
                codecs.lookup(self.encoding)
                # Python also names transforms (rot13, zlib_codec, hex) codecs: only one that
                # turns bytes into text reads a CSV file (str.encode refuses the others).
                "a".encode(self.encoding)
            except LookupError:
                raise InvalidArgument("header.csv.encoding", f"{self.encoding!r} is not a text encoding") from None


@dataclass(frozen=True)
class Spooled:
    path: pathlib.Path
    size: int
    sha256: str
    # '"' bytes in the upload, counted as it streamed in: CSV's usual quote character, whose
    # count must be even (an odd one is an unterminated field); saves reading the file again.
    double_quotes: int | None = None

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def spool(chunks: Iterable[bytes], directory: pathlib.Path, *, limit: int) -> Spooled:
    """Write an upload to a private temporary file while hashing it. The caller discards it.

    Raises ResourceExhausted past `limit` bytes and InvalidArgument for an empty upload;
    on any error (a stream that ends early, a cancelled call) the file is removed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / temporary_name("upload")
    digest, size, quotes = hashlib.sha256(), 0, 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise ResourceExhausted(f"upload larger than the limit of {limit} bytes")
                digest.update(chunk)
                quotes += _count_byte(chunk, _DOUBLE_QUOTE)
                f.write(chunk)
        if size == 0:
            raise InvalidArgument("chunk", "the file is empty")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Spooled(path, size, digest.hexdigest(), quotes)


_DOUBLE_QUOTE = ord('"')


def _count_byte(chunk: bytes, code: int) -> int:
    # numpy compares a chunk's bytes four times as fast as bytes.count walks them.
    return int(np.count_nonzero(np.frombuffer(chunk, dtype=np.uint8) == code))


def _sniff(path: pathlib.Path, dialect: CsvDialect) -> tuple[str, str]:
    if dialect.delimiter and dialect.quote_char:
        return dialect.delimiter, dialect.quote_char
    with open(path, "rb") as f:
        head = f.read(64 * 1024)
    try:
        text = head.decode(dialect.encoding or "utf-8", errors="replace")
    except UnicodeError as exc:
        raise InvalidArgument("header.csv.encoding", f"the file does not decode as {dialect.encoding}: {exc}") from exc
    try:
        sniffed = csv.Sniffer().sniff(text.rsplit("\n", 1)[0] if "\n" in text else text, delimiters=",;\t|")
        delimiter, quote = sniffed.delimiter, sniffed.quotechar or '"'
    except csv.Error:
        delimiter, quote = ",", '"'
    return dialect.delimiter or delimiter, dialect.quote_char or quote


def _csv_batches(path: pathlib.Path, dialect: CsvDialect, double_quotes: int | None = None, *,
                 whole_file_types: bool = False) -> Iterator[pa.RecordBatch]:
    delimiter, quote = _sniff(path, dialect)
    bad_rows: list[str] = []

    def on_invalid_row(row) -> str:  # type: ignore[no-untyped-def]
        number = row.number if row.number is not None else _line_of(path, row.text)
        bad_rows.append(f"line {number}: expected {row.expected_columns} columns, got {row.actual_columns}")
        return "error"

    odd = double_quotes % 2 == 1 if quote == '"' and double_quotes is not None else _odd_quotes(path, quote)
    if odd:
        raise InvalidArgument("chunk", f"unterminated quoted field: the file has an odd number of {quote} characters")

    parse = pacsv.ParseOptions(delimiter=delimiter, quote_char=quote, newlines_in_values=True, invalid_row_handler=on_invalid_row)

    def open_reader(skip: int = 0, types: dict[str, pa.DataType] | None = None,
                    columns: list[str] | None = None) -> pacsv.CSVStreamingReader:
        read = pacsv.ReadOptions(block_size=BLOCK_SIZE, encoding=dialect.encoding or "utf8",
                                 autogenerate_column_names=not dialect.header, skip_rows_after_names=skip)
        convert = pacsv.ConvertOptions(column_types=types or {}, include_columns=columns or [])
        return pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)

    names: list[str] = []
    try:
        types = _csv_column_types(open_reader, names) if whole_file_types else None
        for batch in open_reader(types=types):
            if not dialect.encoding:
                _require_utf8(batch.schema)
            yield batch
    except pa.ArrowInvalid as exc:
        raise _csv_error(str(exc), bad_rows, names) from exc
    except UnicodeError as exc:  # a declared encoding that does not fit the bytes
        raise InvalidArgument("header.csv.encoding", f"the file does not decode as {dialect.encoding or 'UTF-8'}: {exc}") from exc


# "In CSV column #1: CSV conversion error to int64: invalid value 'A-1234'"
_CSV_CONVERSION_ERROR = re.compile(r"In CSV column #(\d+): CSV conversion error to [^:]+:(?: invalid value '(.*)')?", re.DOTALL)


def _csv_column_types(open_reader: Callable[..., pacsv.CSVStreamingReader], names: list[str]) -> dict[str, pa.DataType]:
    """Each column's type over the whole file (fills `names` on the way).

    Arrow's streaming reader takes each column's type from the first block and then fails
    on a later block that does not fit it (numbers, then `A-1234`; empty, then text). So the
    columns not already text are read through once: each such failure widens that column to
    a type that holds the value too, and the read goes on from the rows that fit. Raises
    ArrowInvalid for anything else (ragged rows, invalid UTF-8 in a text column).
    """
    with open_reader() as first:  # closed at once: it reads ahead on a thread
        names[:] = _column_names(first.schema)
        types = {field.name: field.type for field in first.schema}
    _require_named_columns(names)
    rows = 0  # rows known to fit; a restart skips them (Arrow counts blank lines too: never too many)
    while True:
        checked = [name for name, kind in types.items() if not _holds_any_text(kind)]
        if not checked:
            return types
        try:
            with open_reader(rows, types, checked) as reader:
                for batch in reader:
                    rows += batch.num_rows
            return types
        except pa.ArrowInvalid as exc:
            failed = _CSV_CONVERSION_ERROR.search(str(exc))
            if failed is None or int(failed.group(1)) >= len(names) or names[int(failed.group(1))] not in checked:
                raise  # not a type that a wider one fixes
            name = names[int(failed.group(1))]
            types[name] = _widen(types[name], _type_of(failed.group(2)))


def _holds_any_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_binary(kind)


_TIME_UNITS = ("s", "ms", "us", "ns")


def _type_of(value: str | None) -> pa.DataType:
    """The type Arrow's CSV inference gives this one value; text when that cannot be told."""
    if value is None:
        return pa.string()
    cell = '"' + value.replace('"', '""') + '"'
    try:
        return pacsv.read_csv(pa.py_buffer(f"v\n{cell}\n".encode())).schema.field(0).type
    except (pa.ArrowInvalid, UnicodeError):
        return pa.string()


def _widen(earlier: pa.DataType, later: pa.DataType) -> pa.DataType:
    """A type for a column read as `earlier` on some rows and as `later` on others, as Arrow
    infers one for the whole file: the later one after an empty start, float for integers
    and decimals, a timestamp for dates and times, else text (which holds any)."""
    both = (earlier, later)
    stamps = [t for t in both if pa.types.is_timestamp(t)]
    if pa.types.is_null(earlier) or pa.types.is_binary(later):  # binary: refused later, naming the column
        wider = later
    elif all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in both):
        wider = pa.float64()
    elif stamps and all(pa.types.is_date32(t) or pa.types.is_timestamp(t) for t in both) and len({t.tz for t in stamps}) == 1:
        wider = max(stamps, key=lambda t: _TIME_UNITS.index(t.unit))
    else:
        wider = pa.string()
    return wider if wider != earlier else pa.string()  # always wider, so the read makes progress


def _require_utf8(schema: pa.Schema) -> None:
    # Arrow infers `binary` for a column whose bytes are not valid UTF-8.
    for position, field in enumerate(schema):
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            try:
                name = field.name
            except UnicodeDecodeError:  # the header cell itself is not UTF-8
                name = f"#{position + 1}"
            raise InvalidArgument(f"column {name}", "invalid UTF-8; name the file's encoding in the header")


def _odd_quotes(path: pathlib.Path, quote: str) -> bool:
    # A quoted field doubles any quote inside it, so a well-formed file has an even count.
    code, count = ord(quote), 0  # an ASCII character (CsvDialect): one byte
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            count += _count_byte(block, code)
    return count % 2 == 1


def _line_of(path: pathlib.Path, text: str) -> int | str:
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if line.rstrip(b"\r\n").decode("utf-8", "replace") == text:
                return number
    return "?"


# Arrow's readers when a line or row does not fit a block.
_STRADDLING = "straddling object straddles two block boundaries"


def _too_long(what: str) -> ResourceExhausted:
    return ResourceExhausted(f"{what} longer than the limit of {BLOCK_SIZE} bytes per line")


def _csv_error(message: str, bad_rows: list[str], names: list[str]) -> PrivetError:
    if _STRADDLING in message:
        return _too_long("a CSV row is")
    if bad_rows:
        return InvalidArgument(bad_rows[0].split(":")[0], f"ragged CSV {bad_rows[0]}")
    conversion = _CSV_CONVERSION_ERROR.search(message)
    column = names[int(conversion.group(1))] if conversion and int(conversion.group(1)) < len(names) else None
    if "UTF8" in message or "UTF-8" in message:
        return InvalidArgument(column or "encoding", "invalid UTF-8; name the file's encoding in the header")
    if column is not None:
        return InvalidArgument(column, f"CSV does not parse: {message}")
    if "quote" in message.lower() or "unterminated" in message.lower() or "end of file" in message.lower():
        return InvalidArgument("chunk", f"unterminated quoted field: {message}")
    return InvalidArgument("chunk", f"CSV does not parse: {message}")


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
            long = np.flatnonzero(lengths > BLOCK_SIZE)
            if long.size:
                raise _too_long(f"line {line + int(long[0])} is")
            if ends.size:
                line, line_start = line + ends.size, int(ends[-1]) + 1
            offset += len(piece)
            if offset - line_start > BLOCK_SIZE:
                raise _too_long(f"line {line} is")


def _jsonl_batches(path: pathlib.Path, *, whole_file_schema: bool = False) -> Iterator[pa.RecordBatch]:
    _check_jsonl(path)
    schema = _jsonl_schema(path) if whole_file_schema else None
    # Without one, Arrow's streaming reader fixes the schema from the first block, and a key
    # first seen later, or a column empty at first and text later, fails the read.
    parse = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error") if schema is not None else None
    try:
        reader = pajson.open_json(path, read_options=pajson.ReadOptions(block_size=BLOCK_SIZE), parse_options=parse)
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
            schema = pajson.read_json(pa.py_buffer(block), read_options=pajson.ReadOptions(block_size=BLOCK_SIZE)).schema
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
        while chunk := f.read(BLOCK_SIZE):
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


def _json_block_error(exc: pa.ArrowInvalid, block: bytes, first_line: int, path: pathlib.Path) -> InvalidArgument:
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
    if _STRADDLING in str(exc):  # _check_jsonl refuses such a line first; kept for any it misses
        return _too_long("a line is")
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


_PARQUET_BATCH_ROWS = 64 * 1024
# Bytes per value Arrow allocates for each Parquet physical type whatever the encoding (a
# BYTE_ARRAY's offset; its bytes count in the chunk's uncompressed size).
_VALUE_WIDTHS = {"BOOLEAN": 1, "INT32": 4, "FLOAT": 4, "INT64": 8, "DOUBLE": 8, "INT96": 12, "BYTE_ARRAY": 4}
# A dictionary entry longer than this is unusual enough that its column is read as dictionary
# indices and counted exactly before any value is copied out, rather than by smaller batches.
_LONG_ENTRY = 4 << 10


@dataclass(frozen=True)
class _ParquetPlan:
    batch_size: int
    dictionary_leaves: tuple[str, ...]  # leaf paths read as dictionaries, counted, then decoded


def _open_parquet(path: pathlib.Path, **options) -> pq.ParquetFile:  # type: ignore[no-untyped-def]
    return pq.ParquetFile(path, schema_depth_limit=MAX_PARQUET_SCHEMA_DEPTH, **options)


def _parquet_batches(path: pathlib.Path) -> Iterator[pa.RecordBatch]:
    """The file's batches, each refused (ResourceExhausted) before it goes on when a value,
    the batch or the upload so far decodes past MAX_CELL_BYTES, MAX_BATCH_BYTES or
    MAX_DECODED_BYTES. The footer and page headers are checked first, before anything is
    decompressed; see `_parquet_plan` for how the batches stay bounded while they are read."""
    try:
        file = _open_parquet(path)
        plan = _parquet_plan(path, file)
        reader = _open_parquet(path, metadata=file.metadata, read_dictionary=list(plan.dictionary_leaves) or None)
        names, decoded = file.schema_arrow.names, 0
        for batch in reader.iter_batches(batch_size=plan.batch_size):
            size = 0
            for name, column in zip(names, batch.columns):
                column_size, largest = _decoded_size(column)
                if largest > MAX_CELL_BYTES:
                    raise ResourceExhausted(f"column {name}: a value of {largest} bytes; the limit is {MAX_CELL_BYTES} bytes per cell")
                size += column_size
            if size > MAX_BATCH_BYTES:
                raise ResourceExhausted(f"{batch.num_rows} rows decode to {size} bytes; the limit is {MAX_BATCH_BYTES} bytes per batch")
            decoded += size
            if decoded > MAX_DECODED_BYTES:
                raise ResourceExhausted(f"the file decodes to more than the limit of {MAX_DECODED_BYTES} bytes per upload")
            yield batch.cast(file.schema_arrow) if plan.dictionary_leaves else batch
    except (pa.ArrowException, OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        if "too deeply nested" in str(exc):
            raise InvalidArgument("chunk", f"the Parquet schema nests deeper than the limit of {MAX_PARQUET_SCHEMA_DEPTH} levels") from exc
        raise InvalidArgument("chunk", f"not a readable Parquet file: {type(exc).__name__}: {exc}") from exc


# Page types and dictionary encodings in page headers (parquet.thrift).
_DATA_PAGE, _DICTIONARY_PAGE, _DATA_PAGE_V2 = 0, 2, 3
_DICTIONARY_ENCODINGS = (2, 8)  # PLAIN_DICTIONARY, RLE_DICTIONARY
_MAX_PAGE_HEADER = 16 << 20  # Arrow's own bound on a page header


@dataclass
class _ChunkPages:
    decompressed: int = 0  # bytes all its pages decompress to
    values: int = 0  # values in its data pages
    dictionary_values: int = 0  # of those, values in dictionary-encoded pages
    dictionary_bytes: int = 0  # its dictionary page, decompressed


class _Truncated(Exception):
    pass


class _CompactReader:
    """Just enough of Thrift's compact protocol to read Parquet's footer and page headers:
    the integer fields of a struct, the structs inside it and (`lists`) lists of structs;
    everything else skipped, nesting bounded."""

    _MAX_NESTING = 16

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def _byte(self) -> int:
        if self.pos >= len(self.data):
            raise _Truncated
        self.pos += 1
        return self.data[self.pos - 1]

    def _varint(self) -> int:
        value = shift = 0
        while True:
            byte = self._byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ValueError("a varint longer than 64 bits")

    def _zigzag(self) -> int:
        value = self._varint()
        return (value >> 1) ^ -(value & 1)

    def fields(self, depth: int = 0) -> Iterator[tuple[int, int]]:
        """(field id, type) of each field of the struct at the read position, which is left
        at the field's value: the caller reads or skips it before asking for the next."""
        if depth > self._MAX_NESTING:
            raise ValueError("Thrift structs nested too deep")
        last = 0
        while (header := self._byte()) != 0:
            kind, delta = header & 0x0F, header >> 4
            last = last + delta if delta else self._zigzag()
            yield last, kind

    def struct(self, depth: int = 0, *, lists: bool = False) -> dict[int, object]:
        """Fields of the struct at the read position: integers and structs by field id, and
        with `lists`, lists of structs."""
        fields: dict[int, object] = {}
        for field, kind in self.fields(depth):
            if kind in (4, 5, 6):
                fields[field] = self._zigzag()
            elif kind == 12:
                fields[field] = self.struct(depth + 1, lists=lists)
            elif kind == 9 and lists:
                size, element = self.list_header()
                if element == 12:
                    fields[field] = [self.struct(depth + 1, lists=True) for _ in range(size)]
                else:
                    for _ in range(size):
                        self._skip_element(element, depth + 1)
            else:
                self.skip(kind, depth)
        return fields

    def list_header(self) -> tuple[int, int]:
        """(size, element type) of the list at the read position."""
        header = self._byte()
        return (header >> 4 if header >> 4 != 15 else self._varint()), header & 0x0F

    def skip(self, kind: int, depth: int) -> None:
        if depth > self._MAX_NESTING:
            raise ValueError("Thrift values nested too deep")
        if kind in (1, 2):  # a boolean field: its value is in the field header
            return
        if kind == 3:
            self._byte()
        elif kind in (4, 5, 6):
            self._varint()
        elif kind in (7, 8):
            length = 8 if kind == 7 else self._varint()  # before `pos +=`, which reads pos first
            self.pos += length
            if self.pos > len(self.data):
                raise _Truncated
        elif kind in (9, 10):
            size, element = self.list_header()
            for _ in range(size):
                self._skip_element(element, depth + 1)
        elif kind == 11:
            size = self._varint()
            kinds = self._byte() if size else 0
            for _ in range(size):
                self._skip_element(kinds >> 4, depth + 1)
                self._skip_element(kinds & 0x0F, depth + 1)
        elif kind == 12:
            self.struct(depth + 1)
        else:
            raise ValueError(f"unknown Thrift type {kind}")

    def _skip_element(self, kind: int, depth: int) -> None:
        if kind in (1, 2):  # a boolean element is one byte
            self._byte()
        else:
            self.skip(kind, depth)


class _Chunk(NamedTuple):
    """What the footer says of one column chunk (ColumnMetaData in parquet.thrift)."""

    values: int
    uncompressed: int
    compressed: int
    data_page: int
    dictionary_page: int | None
    nulls: int | None


def _row_groups(data: mmap.mmap) -> Iterator[tuple[int, list[_Chunk]]]:
    """(rows, column chunks) of each row group, read from the footer with `_CompactReader`.

    Not through pyarrow's metadata objects: on some malformed footers (a size statistics
    histogram of the wrong length) building one throws where nothing catches it, and the
    process aborts. Arrow's reader itself reports those as errors."""
    if len(data) < 12 or data[-4:] != b"PAR1":
        raise ValueError("not a Parquet file (an encrypted footer is refused too)")
    length = int.from_bytes(data[-8:-4], "little")
    if length > len(data) - 12:
        raise ValueError("the footer is longer than the file")
    reader = _CompactReader(data[len(data) - 8 - length:len(data) - 8])
    try:
        for field, kind in reader.fields():
            if field != 4 or kind != 9:  # FileMetaData.row_groups
                reader.skip(kind, 0)
                continue
            size, element = reader.list_header()
            for _ in range(size if element == 12 else 0):
                group = reader.struct(1, lists=True)
                yield _int(group, 3), [_chunk(column) for column in group.get(1) or ()]  # type: ignore[union-attr]
    except _Truncated:
        raise ValueError("the footer ends early") from None


def _chunk(column: object) -> _Chunk:
    meta = column.get(3) if isinstance(column, dict) else None  # ColumnChunk.meta_data
    if not isinstance(meta, dict):
        raise ValueError("a column chunk without its metadata (an encrypted column is refused)")
    stats = meta.get(12)
    nulls = stats.get(3) if isinstance(stats, dict) else None
    dictionary_page = meta.get(11)
    return _Chunk(_int(meta, 5), _int(meta, 6), _int(meta, 7), _int(meta, 9),
                  dictionary_page if isinstance(dictionary_page, int) else None, nulls if isinstance(nulls, int) else None)


def _int(fields: dict[int, object], field: int) -> int:
    value = fields.get(field)
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"Parquet metadata without a valid field {field}")
    return value


def _page_header(data: mmap.mmap | bytes, pos: int, end: int) -> tuple[dict[int, object], int]:
    """The page header at `pos` (none reaching past `end`) and its length in bytes."""
    window = 1024
    while True:
        reader = _CompactReader(data[pos:min(end, pos + window)])
        try:
            return reader.struct(), reader.pos
        except _Truncated:
            if window >= _MAX_PAGE_HEADER or pos + window >= end:
                raise ValueError("a page header that does not end") from None
            window *= 4


def _chunk_pages(data: mmap.mmap, chunk: _Chunk, path: str, pages_left: int) -> tuple[_ChunkPages, int]:
    """Walk a column chunk's page headers as Arrow's reader will, decompressing nothing;
    returns what they say and how many there were. Raises ResourceExhausted naming
    MAX_BATCH_BYTES for a page that decompresses to more (Arrow decompresses a page into one
    buffer) or past `pages_left` pages, ValueError for a header that does not parse."""
    start = chunk.data_page
    if chunk.dictionary_page is not None and 0 < chunk.dictionary_page < start:  # as Arrow finds the start
        start = chunk.dictionary_page
    end = start + chunk.compressed
    if end > len(data):
        raise ValueError(f"column {path}: the column chunk lies outside the file")
    pages, count, pos = _ChunkPages(), 0, start
    while pos < end and pages.values < chunk.values:  # where Arrow's page reader stops too
        # A header may run past the chunk's stated end (old writers understated it): Arrow reads on.
        header, length = _page_header(data, pos, len(data))
        kind, decompressed, compressed = (_int(header, field) for field in (1, 2, 3))
        if decompressed > MAX_BATCH_BYTES:
            raise ResourceExhausted(f"column {path}: a page decompresses to {decompressed} bytes; "
                                    f"the limit is {MAX_BATCH_BYTES} bytes per batch")
        pages.decompressed += decompressed
        if kind == _DICTIONARY_PAGE:
            pages.dictionary_bytes = max(pages.dictionary_bytes, decompressed)
        elif kind in (_DATA_PAGE, _DATA_PAGE_V2):
            detail = header.get(5 if kind == _DATA_PAGE else 8)
            if isinstance(detail, dict):
                values = _int(detail, 1)
                pages.values += values
                if detail.get(2 if kind == _DATA_PAGE else 4) in _DICTIONARY_ENCODINGS:
                    pages.dictionary_values += values
        count += 1
        if count > pages_left:
            raise ResourceExhausted(f"the file has more than the limit of {MAX_PARQUET_PAGES} pages")
        pos += length + compressed
    return pages, count



def _parquet_plan(path: pathlib.Path, file: pq.ParquetFile) -> _ParquetPlan:
    """Check the file against the limits before anything is decompressed, and choose how to read.

    The footer (`_row_groups`) and every page header (`_chunk_pages`) are read first, with
    the compact Thrift reader rather than pyarrow's metadata objects: no page may decompress past
    MAX_BATCH_BYTES (Arrow decompresses a page into one buffer, and a writer puts up to 1024
    values in one); all chunks together may decode to at most MAX_DECODED_BYTES (their pages'
    sizes, or their values times their width when that is more, as for run-length encoded
    values); no BYTE_ARRAY chunk's values may average past MAX_CELL_BYTES (a 100 MB cell that
    zstd packs into 9 KB is refused here); no fixed-size value may be wider.

    A dictionary lets each dictionary-encoded value repeat its longest entry: a row group whose
    dictionaries could add much is probed (its first rows read, dictionaries as they are) for
    its longest entry. Batches are sized so that a batch's rows, each its columns' longest
    entries, stay within half of MAX_BATCH_BYTES; a column with entries past _LONG_ENTRY, or a
    repeated one whose dictionary could add that much to one row, is read as dictionary
    indices instead, so that each batch is counted exactly (`_decoded_size`) before any of its
    values is copied out.
    """
    leaves = [file.schema.column(j) for j in range(file.metadata.num_columns)]
    owner = _leaf_owners(file.schema_arrow)  # the top-level column of each leaf
    if len(owner) != len(leaves):
        raise InvalidArgument("chunk", "the Parquet schema does not map onto its columns")
    widths = []
    for leaf in leaves:
        if leaf.physical_type == "FIXED_LEN_BYTE_ARRAY":
            if leaf.length > MAX_CELL_BYTES:
                raise ResourceExhausted(f"column {leaf.path}: values of {leaf.length} bytes; the limit is {MAX_CELL_BYTES} bytes per cell")
            widths.append(max(leaf.length, 1))
        else:
            widths.append(_VALUE_WIDTHS.get(leaf.physical_type, 8))
    repeated = {owner[j] for j, leaf in enumerate(leaves) if leaf.max_repetition_level > 0}
    decoded, pages_left, groups = 0, MAX_PARQUET_PAGES, []
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for rows, chunks in _row_groups(data):
            if len(chunks) != len(leaves):
                raise ValueError(f"a row group of {len(chunks)} column chunks, for {len(leaves)} columns")
            estimate: dict[int, int] = {}  # top-level column -> decoded bytes, dictionaries aside
            dictionaries: dict[int, tuple[int, int]] = {}  # leaf -> (values that use the dictionary, its page's bytes)
            for j, chunk in enumerate(chunks):
                name = leaves[j].path
                if pages_left <= 0:
                    raise ResourceExhausted(f"the file has more than the limit of {MAX_PARQUET_PAGES} pages")
                pages, count = _chunk_pages(data, chunk, name, pages_left)
                pages_left -= max(count, 1)  # a column chunk counts as a page at least
                stored = max(chunk.uncompressed, pages.decompressed)
                values = max(chunk.values, pages.values)
                size = max(stored, values * widths[j])
                decoded += size
                estimate[owner[j]] = estimate.get(owner[j], 0) + size
                if leaves[j].physical_type != "BYTE_ARRAY":
                    continue
                present = values - (chunk.nulls or 0)
                if present > 0 and stored // present > MAX_CELL_BYTES:
                    raise ResourceExhausted(f"column {name}: values of {stored // present} bytes on average; "
                                            f"the limit is {MAX_CELL_BYTES} bytes per cell")
                if pages.dictionary_values:
                    dictionaries[j] = (pages.dictionary_values, pages.dictionary_bytes)
            groups.append((rows, estimate, dictionaries))
    if decoded > MAX_DECODED_BYTES:
        raise ResourceExhausted(f"the file decodes to {decoded} bytes; the limit is {MAX_DECODED_BYTES} bytes per upload")
    half = MAX_BATCH_BYTES // 2
    # An entry is no longer than its dictionary page: probe only where that bound is not enough.
    probe = [r for r, (_, _, dictionaries) in enumerate(groups)
             if any(largest > _LONG_ENTRY or values * largest > half for values, largest in dictionaries.values())]
    longest = _longest_dictionary_entries(path, file, probe)
    as_dictionary: set[int] = set()
    row_bytes = 1
    for r, (rows, estimate, dictionaries) in enumerate(groups):
        width = sum(estimate.values()) // max(rows, 1) + 1
        added: dict[int, int] = {}  # top-level column -> bytes its dictionaries could add to one group
        for j, (values, largest) in dictionaries.items():
            entry = longest.get((r, j)) or largest  # None or 0: the probe saw no entry, so the page bounds it
            column = owner[j]
            added[column] = added.get(column, 0) + values * entry
            if entry > _LONG_ENTRY:
                as_dictionary.add(column)
            elif column not in repeated:
                width += entry
        as_dictionary.update(c for c, more in added.items() if c in repeated and more > half)
        row_bytes = max(row_bytes, width)
    dictionary_leaves = tuple(leaf.path for j, leaf in enumerate(leaves)
                              if owner[j] in as_dictionary and leaf.physical_type == "BYTE_ARRAY")
    return _ParquetPlan(max(1, min(_PARQUET_BATCH_ROWS, half // row_bytes)), dictionary_leaves)


_PROBE_ROWS = 1024


def _longest_dictionary_entries(path: pathlib.Path, file: pq.ParquetFile, groups: list[int]) -> dict[tuple[int, int], int | None]:
    """(row group, BYTE_ARRAY leaf) -> the longest entry of its chunk's dictionary, None where
    the probe did not load it. The probe reads the group's first rows with BYTE_ARRAY columns
    as dictionaries: the first value decoded loads a chunk's whole dictionary page, and
    nothing is expanded (a chunk whose first rows hold no value comes back empty)."""
    if not groups:
        return {}
    leaves = [file.schema.column(j) for j in range(file.metadata.num_columns)]
    byte_arrays = [j for j, leaf in enumerate(leaves) if leaf.physical_type == "BYTE_ARRAY"]
    probe = _open_parquet(path, metadata=file.metadata, read_dictionary=[leaves[j].path for j in byte_arrays],
                          pre_buffer=False, buffer_size=1 << 20)
    longest: dict[tuple[int, int], int | None] = {}
    for r in groups:
        batches = probe.iter_batches(batch_size=_PROBE_ROWS, row_groups=[r], use_threads=False)
        try:
            batch = next(batches, None)
        finally:
            batches.close()
        # Each BYTE_ARRAY leaf comes back as one dictionary array, in leaf order.
        found = [entry for array in (batch.columns if batch is not None else ()) for entry in _dictionary_entries(array)]
        if len(found) == len(byte_arrays):
            longest.update(((r, j), entry) for j, entry in zip(byte_arrays, found))
    return longest


def _leaf_owners(schema: pa.Schema) -> list[int]:
    """The top-level field of each Parquet leaf column, in the file's order (depth first)."""
    owners: list[int] = []
    for index, field in enumerate(schema):
        owners += [index] * _leaf_count(field.type)
    return owners


def _leaf_count(kind: pa.DataType) -> int:
    # Recursion is bounded by MAX_PARQUET_SCHEMA_DEPTH, which the reader enforced already.
    if isinstance(kind, pa.ExtensionType):
        return _leaf_count(kind.storage_type)
    if pa.types.is_struct(kind):
        return sum(_leaf_count(kind.field(i).type) for i in range(kind.num_fields))
    if pa.types.is_map(kind):
        return _leaf_count(kind.key_type) + _leaf_count(kind.item_type)
    if _is_list(kind):
        return _leaf_count(kind.value_type)
    return 1


def _is_list(kind: pa.DataType) -> bool:
    return (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
            or pa.types.is_list_view(kind) or pa.types.is_large_list_view(kind))


def _is_binary_like(kind: pa.DataType) -> bool:
    return (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)
            or pa.types.is_large_binary(kind) or pa.types.is_string_view(kind) or pa.types.is_binary_view(kind))


def _children(array: pa.Array) -> list[pa.Array]:
    """The arrays nested in `array`, sliced to its own rows (no copy)."""
    kind = array.type
    if pa.types.is_struct(kind):
        return list(array.flatten())
    if pa.types.is_map(kind):  # flatten has no kernel for dictionary keys or items
        offsets = array.offsets
        start, stop = (offsets[0].as_py(), offsets[-1].as_py()) if len(offsets) else (0, 0)
        return [array.keys.slice(start, stop - start), array.items.slice(start, stop - start)]
    if _is_list(kind):
        return [array.flatten()]
    return []


def _dictionary_entries(array: pa.Array) -> list[int | None]:
    """The longest entry of each dictionary in `array`, depth first (None for an empty one)."""
    if isinstance(array, pa.ExtensionArray):
        array = array.storage
    kind = array.type
    if pa.types.is_dictionary(kind):
        entries = array.dictionary
        if not len(entries):
            return [None]
        return [int(pc.max(pc.binary_length(entries)).as_py() or 0) if _is_binary_like(entries.type) else 0]
    if pa.types.is_struct(kind):
        return [entry for i in range(kind.num_fields) for entry in _dictionary_entries(array.field(i))]
    if pa.types.is_map(kind):
        return _dictionary_entries(array.keys) + _dictionary_entries(array.items)
    if _is_list(kind):
        return _dictionary_entries(array.values)
    return []


def _decoded_size(array: pa.Array) -> tuple[int, int]:
    """(bytes `array` holds once every dictionary is decoded, its longest binary or text value).
    Counts dictionary-encoded values by their entries' lengths: nothing is copied out."""
    if isinstance(array, pa.ExtensionArray):
        array = array.storage
    kind = array.type
    if pa.types.is_dictionary(kind):
        entries = array.dictionary
        if not _is_binary_like(entries.type):
            return len(array) * max(entries.nbytes // max(len(entries), 1), 1), 0
        lengths = pc.take(pc.binary_length(entries), array.indices)
        total, longest = pc.sum(lengths).as_py() or 0, pc.max(lengths).as_py() or 0
        return int(total) + 8 * len(array), int(longest)
    children = _children(array)
    if children:
        sizes = [_decoded_size(child) for child in children]
        return sum(s for s, _ in sizes) + 8 * len(array), max((m for _, m in sizes), default=0)
    if _is_binary_like(kind):
        longest = pc.max(pc.binary_length(array)).as_py() if len(array) else 0
        return array.nbytes, int(longest or 0)
    return array.nbytes, 0


def read_batches(spooled: Spooled, fmt: str, dialect: CsvDialect = CsvDialect()) -> Iterator[pa.RecordBatch]:
    """Record batches of the upload, streaming. Raises InvalidArgument naming what is wrong."""
    # A file of more than one block is read through once for its types first: Arrow's
    # streaming readers take them from the first block alone.
    several_blocks = spooled.size > BLOCK_SIZE
    if fmt == "csv":
        batches = _csv_batches(spooled.path, dialect, spooled.double_quotes, whole_file_types=several_blocks)
    elif fmt == "jsonl":
        batches = _jsonl_batches(spooled.path, whole_file_schema=several_blocks)
    elif fmt == "parquet":
        batches = _parquet_batches(spooled.path)
    else:
        raise InvalidArgument("header.format", f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    empty = True
    for number, batch in enumerate(batches):
        if number == 0:  # every batch has the first one's schema
            _require_named_columns(_column_names(batch.schema))
        if batch.num_rows:
            empty = False
            yield batch
    if empty:
        raise InvalidArgument("chunk", "the file has no data rows")


def _column_names(schema: pa.Schema) -> list[str]:
    names = []
    for position in range(len(schema)):
        try:
            names.append(schema.field(position).name)
        except UnicodeDecodeError:
            raise InvalidArgument(f"column #{position + 1}", "the column name is not valid UTF-8") from None
    return names


def _require_named_columns(names: list[str]) -> None:
    # Every later stage picks columns by name: a blank or repeated one is ambiguous.
    for position, name in enumerate(names, start=1):
        if not name.strip():
            raise InvalidArgument(f"column #{position}", "the column has no name; every column needs one")
    require_unique_columns(names)

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
import os
import pathlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from governance.errors import InvalidArgument, ResourceExhausted
from governance.masking.profile import require_unique_columns
from governance.store.blobs import temporary_name

__all__ = ["FORMATS", "CsvDialect", "Spooled", "spool", "read_batches"]

FORMATS = ("csv", "jsonl", "parquet")
BLOCK_SIZE = 8 << 20  # bytes per CSV/JSON block: bounds memory, keeps batches large enough to vectorise


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
            except LookupError:
                raise InvalidArgument("header.csv.encoding", f"unknown encoding {self.encoding!r}") from None


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


def _csv_error(message: str, bad_rows: list[str], names: list[str]) -> InvalidArgument:
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


def _jsonl_batches(path: pathlib.Path, *, whole_file_schema: bool = False) -> Iterator[pa.RecordBatch]:
    schema = _jsonl_schema(path) if whole_file_schema else None
    # Without one, Arrow's streaming reader fixes the schema from the first block, and a key
    # first seen later, or a column empty at first and text later, fails the read.
    parse = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error") if schema is not None else None
    try:
        reader = pajson.open_json(path, read_options=pajson.ReadOptions(block_size=BLOCK_SIZE), parse_options=parse)
        for batch in reader:
            yield batch
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
        except (ValueError, AttributeError):
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


def _json_error(exc: pa.ArrowInvalid, block: bytes | None, path: pathlib.Path, first_line: int = 1) -> InvalidArgument:
    """InvalidArgument naming the column at fault and, where `block` (the text Arrow read as
    one, starting at `first_line`) is known, its line; else the first line that is not a JSON object."""
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
            except ValueError:
                return f"line {number}"
    return None


def _parquet_batches(path: pathlib.Path) -> Iterator[pa.RecordBatch]:
    try:
        file = pq.ParquetFile(path)
        yield from file.iter_batches(batch_size=64 * 1024)
    except (pa.ArrowException, OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidArgument("chunk", f"not a readable Parquet file: {type(exc).__name__}: {exc}") from exc


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

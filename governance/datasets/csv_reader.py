"""CSV uploads as Arrow record batches: the dialect (given or sniffed), then Arrow's streaming reader.

Every parse problem becomes InvalidArgument naming the line or column at fault; a row longer
than `limits.BLOCK_SIZE` is ResourceExhausted.
"""

from __future__ import annotations

import codecs
import csv
import pathlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from privet.governance.datasets import limits
from privet.governance.datasets.columns import column_names, require_named_columns
from privet.governance.datasets.spooling import count_byte
from privet.governance.errors import InvalidArgument, PrivetError
from privet.governance.masking.entities import PiiType
from privet.governance.masking.patterns import column_hints

__all__ = ["CsvDialect", "csv_batches"]


@dataclass(frozen=True)
class CsvDialect:
    """How a CSV upload is written; InvalidArgument naming the header field at fault."""

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


def csv_batches(path: pathlib.Path, dialect: CsvDialect, double_quotes: int | None = None, *,
                whole_file_types: bool = False) -> Iterator[pa.RecordBatch]:
    """The file's batches. `double_quotes` is the '"' count `spool` took, if known;
    `whole_file_types` reads the file through once first for each column's type."""
    delimiter, quote = _sniff(path, dialect)
    bad_rows: list[str] = []

    def on_invalid_row(row: Any) -> str:  # pyarrow's InvalidRow: untyped
        number = row.number if row.number is not None else _line_of(path, row.text)
        bad_rows.append(f"line {number}: expected {row.expected_columns} columns, got {row.actual_columns}")
        return "error"

    odd = double_quotes % 2 == 1 if quote == '"' and double_quotes is not None else _odd_quotes(path, quote)
    if odd:
        raise InvalidArgument("chunk", f"unterminated quoted field: the file has an odd number of {quote} characters")

    parse = pacsv.ParseOptions(delimiter=delimiter, quote_char=quote, newlines_in_values=True, invalid_row_handler=on_invalid_row)

    def open_reader(skip: int = 0, types: dict[str, pa.DataType] | None = None,
                    columns: list[str] | None = None) -> pacsv.CSVStreamingReader:
        read = pacsv.ReadOptions(block_size=limits.BLOCK_SIZE, encoding=dialect.encoding or "utf8",
                                 autogenerate_column_names=not dialect.header, skip_rows_after_names=skip)
        convert = pacsv.ConvertOptions(column_types=types or {}, include_columns=columns or [])
        return pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)

    names: list[str] = []
    try:
        types = _csv_column_types(open_reader, names) if whole_file_types else _first_block_types(open_reader, names)
        types = _identifiers_as_text(open_reader, types)
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
        names[:] = column_names(first.schema)
        types = {field.name: field.type for field in first.schema}
    require_named_columns(names)
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


def _first_block_types(open_reader: Callable[..., pacsv.CSVStreamingReader], names: list[str]) -> dict[str, pa.DataType]:
    """Each column's type as Arrow infers it from the first block (fills `names`)."""
    with open_reader() as first:
        names[:] = column_names(first.schema)
        return {field.name: field.type for field in first.schema}


# Digits with a leading zero, or a plus sign and six or more, are an identifier (a postcode,
# a phone number, an account): as a number it would lose what makes it that identifier.
_IDENTIFIER_DIGITS = r"^\s*(?:\+[0-9]{6,}|0[0-9]+)\s*$"
# Types whose column, when its name says so, holds identifiers however its digits look.
_NOT_IDENTIFIERS = frozenset((PiiType.DATE_OF_BIRTH, PiiType.PERSON_NAME, PiiType.ADDRESS))


def _identifiers_as_text(open_reader: Callable[..., pacsv.CSVStreamingReader],
                         types: dict[str, pa.DataType]) -> dict[str, pa.DataType]:
    """`types` with identifier-like number columns read as text: `02290` stays `02290`.

    A column Arrow reads as numbers is an identifier when its name says so (`zip`,
    `phone`, `ssn`) or when any cell is written with a leading zero or plus sign; those
    cells are read once more as text to tell (only such columns, the whole file)."""
    numeric = [name for name, kind in types.items() if pa.types.is_integer(kind) or pa.types.is_floating(kind)]
    if not numeric:
        return types
    out = dict(types)
    named = [name for name in numeric if set(column_hints(name)) - _NOT_IDENTIFIERS]
    for name in named:
        out[name] = pa.string()
    unnamed = [name for name in numeric if name not in named]
    if unnamed:
        with open_reader(types={name: pa.string() for name in unnamed}, columns=unnamed) as reader:
            pending = set(unnamed)
            for batch in reader:
                for name in list(pending):
                    if pc.any(pc.match_substring_regex(batch.column(name), _IDENTIFIER_DIGITS)).as_py():
                        out[name] = pa.string()
                        pending.discard(name)
                if not pending:
                    break
    return out


def _holds_any_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_binary(kind))


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
            count += count_byte(block, code)
    return count % 2 == 1


def _line_of(path: pathlib.Path, text: str) -> int | str:
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if line.rstrip(b"\r\n").decode("utf-8", "replace") == text:
                return number
    return "?"


def _csv_error(message: str, bad_rows: list[str], names: list[str]) -> PrivetError:
    if limits.ARROW_STRADDLING in message:
        return limits.line_too_long("a CSV row is")
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


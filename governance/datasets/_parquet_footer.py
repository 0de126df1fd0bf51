"""Parquet's footer and page headers, read by hand, before Arrow reads anything. Private:
only `parquet_reader` should need this.

Why it exists: the limits on what an upload decodes to (`limits`) must be checked before
anything is decompressed, and pyarrow's metadata objects cannot be trusted with a hostile
footer (on some malformed ones, a size statistics histogram of the wrong length, building
one throws where nothing catches it, and the process aborts). So this reads just enough of
Thrift's compact protocol to walk the footer's row groups and every column chunk's page
headers, with its nesting and its reads bounded; anything it cannot read is ValueError,
which the reader reports as a file that does not parse.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from privet.governance.datasets import limits
from privet.governance.errors import ResourceExhausted

__all__ = ["Chunk", "ChunkPages", "CompactReader", "Truncated", "chunk_pages", "row_groups"]

# Page types and dictionary encodings in page headers (parquet.thrift).
_DATA_PAGE, _DICTIONARY_PAGE, _DATA_PAGE_V2 = 0, 2, 3
_DICTIONARY_ENCODINGS = (2, 8)  # PLAIN_DICTIONARY, RLE_DICTIONARY
_MAX_PAGE_HEADER = 16 << 20  # Arrow's own bound on a page header


@dataclass
class ChunkPages:
    """What one column chunk's page headers say."""

    decompressed: int = 0  # bytes all its pages decompress to
    values: int = 0  # values in its data pages
    dictionary_values: int = 0  # of those, values in dictionary-encoded pages
    dictionary_bytes: int = 0  # its dictionary page, decompressed


class Truncated(Exception):
    """The bytes end inside a Thrift value (a page header may need a longer window)."""


class CompactReader:
    """Just enough of Thrift's compact protocol to read Parquet's footer and page headers:
    the integer fields of a struct, the structs inside it and (`lists`) lists of structs;
    everything else skipped, nesting bounded."""

    _MAX_NESTING = 16

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def _byte(self) -> int:
        if self.pos >= len(self.data):
            raise Truncated
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
                raise Truncated
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


class Chunk(NamedTuple):
    """What the footer says of one column chunk (ColumnMetaData in parquet.thrift)."""

    values: int
    uncompressed: int
    compressed: int
    data_page: int
    dictionary_page: int | None
    nulls: int | None


def row_groups(data: mmap.mmap) -> Iterator[tuple[int, list[Chunk]]]:
    """(rows, column chunks) of each row group, read from the footer with `CompactReader`.

    Not through pyarrow's metadata objects: on some malformed footers (a size statistics
    histogram of the wrong length) building one throws where nothing catches it, and the
    process aborts. Arrow's reader itself reports those as errors."""
    if len(data) < 12 or data[-4:] != b"PAR1":
        raise ValueError("not a Parquet file (an encrypted footer is refused too)")
    length = int.from_bytes(data[-8:-4], "little")
    if length > len(data) - 12:
        raise ValueError("the footer is longer than the file")
    reader = CompactReader(data[len(data) - 8 - length:len(data) - 8])
    try:
        for field, kind in reader.fields():
            if field != 4 or kind != 9:  # FileMetaData.row_groups
                reader.skip(kind, 0)
                continue
            size, element = reader.list_header()
            for _ in range(size if element == 12 else 0):
                group = reader.struct(1, lists=True)
                columns = group.get(1) or []
                if not isinstance(columns, list):
                    raise ValueError("a row group whose columns are not a list")
                yield _int(group, 3), [_chunk(column) for column in columns]
    except Truncated:
        raise ValueError("the footer ends early") from None


def _chunk(column: object) -> Chunk:
    meta = column.get(3) if isinstance(column, dict) else None  # ColumnChunk.meta_data
    if not isinstance(meta, dict):
        raise ValueError("a column chunk without its metadata (an encrypted column is refused)")
    stats = meta.get(12)
    nulls = stats.get(3) if isinstance(stats, dict) else None
    dictionary_page = meta.get(11)
    return Chunk(_int(meta, 5), _int(meta, 6), _int(meta, 7), _int(meta, 9),
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
        reader = CompactReader(data[pos:min(end, pos + window)])
        try:
            return reader.struct(), reader.pos
        except Truncated:
            if window >= _MAX_PAGE_HEADER or pos + window >= end:
                raise ValueError("a page header that does not end") from None
            window *= 4


def chunk_pages(data: mmap.mmap, chunk: Chunk, path: str, pages_left: int) -> tuple[ChunkPages, int]:
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
    pages, count, pos = ChunkPages(), 0, start
    while pos < end and pages.values < chunk.values:  # where Arrow's page reader stops too
        # A header may run past the chunk's stated end (old writers understated it): Arrow reads on.
        header, length = _page_header(data, pos, len(data))
        kind, decompressed, compressed = (_int(header, field) for field in (1, 2, 3))
        if decompressed > limits.MAX_BATCH_BYTES:
            raise ResourceExhausted(f"column {path}: a page decompresses to {decompressed} bytes; "
                                    f"the limit is {limits.MAX_BATCH_BYTES} bytes per batch")
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
            raise ResourceExhausted(f"the file has more than the limit of {limits.MAX_PARQUET_PAGES} pages")
        pos += length + compressed
    return pages, count

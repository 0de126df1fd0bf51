"""Parquet uploads as Arrow record batches, each bounded before it is decoded.

A few kilobytes of Parquet may stand for gigabytes (compression, dictionaries): the footer
and every page header are checked against `limits` before anything is decompressed
(`_parquet_footer`), the batch size is chosen so that a batch stays within MAX_BATCH_BYTES,
and each batch is counted (`_arrow_sizes`) before any of its values is copied out.
"""

from __future__ import annotations

import mmap
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from privet.governance.datasets import limits
from privet.governance.datasets._arrow_sizes import decoded_size, dictionary_entries, leaf_owners
from privet.governance.datasets._parquet_footer import chunk_pages, row_groups
from privet.governance.errors import InvalidArgument, ResourceExhausted

__all__ = ["parquet_batches"]

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


def _open_parquet(path: pathlib.Path, **options: Any) -> pq.ParquetFile:
    return pq.ParquetFile(path, schema_depth_limit=limits.MAX_PARQUET_SCHEMA_DEPTH, **options)


def parquet_batches(path: pathlib.Path) -> Iterator[pa.RecordBatch]:
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
                column_size, largest = decoded_size(column)
                if largest > limits.MAX_CELL_BYTES:
                    raise ResourceExhausted(f"column {name}: a value of {largest} bytes; the limit is {limits.MAX_CELL_BYTES} bytes per cell")
                size += column_size
            if size > limits.MAX_BATCH_BYTES:
                raise ResourceExhausted(f"{batch.num_rows} rows decode to {size} bytes; the limit is {limits.MAX_BATCH_BYTES} bytes per batch")
            decoded += size
            if decoded > limits.MAX_DECODED_BYTES:
                raise ResourceExhausted(f"the file decodes to more than the limit of {limits.MAX_DECODED_BYTES} bytes per upload")
            yield batch.cast(file.schema_arrow) if plan.dictionary_leaves else batch
    except (pa.ArrowException, OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        if "too deeply nested" in str(exc):
            raise InvalidArgument("chunk", f"the Parquet schema nests deeper than the limit of {limits.MAX_PARQUET_SCHEMA_DEPTH} levels") from exc
        raise InvalidArgument("chunk", f"not a readable Parquet file: {type(exc).__name__}: {exc}") from exc




def _parquet_plan(path: pathlib.Path, file: pq.ParquetFile) -> _ParquetPlan:
    """Check the file against the limits before anything is decompressed, and choose how to read.

    The footer (`row_groups`) and every page header (`chunk_pages`) are read first, with
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
    indices instead, so that each batch is counted exactly (`decoded_size`) before any of its
    values is copied out.
    """
    leaves = [file.schema.column(j) for j in range(file.metadata.num_columns)]
    owner = leaf_owners(file.schema_arrow)  # the top-level column of each leaf
    if len(owner) != len(leaves):
        raise InvalidArgument("chunk", "the Parquet schema does not map onto its columns")
    widths = []
    for leaf in leaves:
        if leaf.physical_type == "FIXED_LEN_BYTE_ARRAY":
            if leaf.length > limits.MAX_CELL_BYTES:
                raise ResourceExhausted(f"column {leaf.path}: values of {leaf.length} bytes; the limit is {limits.MAX_CELL_BYTES} bytes per cell")
            widths.append(max(leaf.length, 1))
        else:
            widths.append(_VALUE_WIDTHS.get(leaf.physical_type, 8))
    repeated = {owner[j] for j, leaf in enumerate(leaves) if leaf.max_repetition_level > 0}
    decoded, pages_left, groups = 0, limits.MAX_PARQUET_PAGES, []
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for rows, chunks in row_groups(data):
            if len(chunks) != len(leaves):
                raise ValueError(f"a row group of {len(chunks)} column chunks, for {len(leaves)} columns")
            estimate: dict[int, int] = {}  # top-level column -> decoded bytes, dictionaries aside
            dictionaries: dict[int, tuple[int, int]] = {}  # leaf -> (values that use the dictionary, its page's bytes)
            for j, chunk in enumerate(chunks):
                name = leaves[j].path
                if pages_left <= 0:
                    raise ResourceExhausted(f"the file has more than the limit of {limits.MAX_PARQUET_PAGES} pages")
                pages, count = chunk_pages(data, chunk, name, pages_left)
                pages_left -= max(count, 1)  # a column chunk counts as a page at least
                stored = max(chunk.uncompressed, pages.decompressed)
                values = max(chunk.values, pages.values)
                size = max(stored, values * widths[j])
                decoded += size
                estimate[owner[j]] = estimate.get(owner[j], 0) + size
                if leaves[j].physical_type != "BYTE_ARRAY":
                    continue
                present = values - (chunk.nulls or 0)
                if present > 0 and stored // present > limits.MAX_CELL_BYTES:
                    raise ResourceExhausted(f"column {name}: values of {stored // present} bytes on average; "
                                            f"the limit is {limits.MAX_CELL_BYTES} bytes per cell")
                if pages.dictionary_values:
                    dictionaries[j] = (pages.dictionary_values, pages.dictionary_bytes)
            groups.append((rows, estimate, dictionaries))
    if decoded > limits.MAX_DECODED_BYTES:
        raise ResourceExhausted(f"the file decodes to {decoded} bytes; the limit is {limits.MAX_DECODED_BYTES} bytes per upload")
    half = limits.MAX_BATCH_BYTES // 2
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
        found = [entry for array in (batch.columns if batch is not None else ()) for entry in dictionary_entries(array)]
        if len(found) == len(byte_arrays):
            longest.update(((r, j), entry) for j, entry in zip(byte_arrays, found))
    return longest



"""The upload readers' limits (governance/datasets/formats.py), in process and small: the
limits are lowered with monkeypatch where a real-size file would cost the test its speed.

tests/security/test_hostile_input.py drives the same files through the real servers.
"""

from __future__ import annotations

import io
import pathlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from privet.governance.datasets import _parquet_footer, jsonl_reader, limits, parquet_reader
from privet.governance.datasets.formats import CsvDialect, read_batches, spool
from privet.governance.errors import InvalidArgument, ResourceExhausted


def _read(tmp_path: pathlib.Path, data: bytes, fmt: str) -> pa.Table:
    upload = spool([data], tmp_path, limit=1 << 30)
    try:
        return pa.Table.from_batches(list(read_batches(upload, fmt, CsvDialect())))
    finally:
        upload.discard()


def _parquet(table: pa.Table, **options) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def _nothing_decompressed(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a batch was read before the limits were checked")
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", refuse)


# --- JSON Lines -------------------------------------------------------------------------------

# Nesting here stays where Arrow's reader survives it (1,000 levels), so that a regression
# fails these tests instead of killing the test run; the 20,000-level crash is reproduced in
# a child process by tests/security/test_hostile_input.py.
def test_jsonl_nesting_is_refused_naming_the_line_and_the_limit(tmp_path: pathlib.Path) -> None:
    ok = b'{"x": 1, "a": ' + b"[" * 63 + b"1" + b"]" * 63 + b"}\n"
    deep = b'{"x": 2, "a": ' + b"[" * 1000 + b"]" * 1000 + b"}\n"
    assert _read(tmp_path, ok * 3, "jsonl").num_rows == 3
    with pytest.raises(InvalidArgument) as err:
        _read(tmp_path, ok * 3 + deep, "jsonl")
    assert err.value.field == "line 4"
    assert f"limit of {limits.MAX_JSON_DEPTH} levels" in err.value.description


def test_a_string_left_open_does_not_hide_the_next_lines_nesting(tmp_path: pathlib.Path) -> None:
    data = b'{"a": "open\n' + b'{"b": ' + b"[" * 1000 + b"]" * 1000 + b"}\n"
    with pytest.raises(InvalidArgument) as err:
        _read(tmp_path, data, "jsonl")
    assert err.value.field == "line 2"


def test_a_jsonl_line_longer_than_a_block_is_refused_before_it_is_held(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "BLOCK_SIZE", 4096)
    monkeypatch.setattr(jsonl_reader, "_SCAN_PIECE", 1024)
    fits = b'{"a": "' + b"x" * (4096 - 10) + b'"}\n'
    assert len(fits) == 4096
    assert _read(tmp_path, b'{"a": "y"}\n' + fits, "jsonl").num_rows == 2
    with pytest.raises(ResourceExhausted, match="line 2 is longer than the limit of 4096 bytes"):
        _read(tmp_path, b'{"a": "y"}\n' + b'{"a": "' + b"x" * 10_000 + b'"}\n', "jsonl")
    with pytest.raises(ResourceExhausted, match="line 1 is longer"):  # no line break at all
        _read(tmp_path, b"x" * 10_000, "jsonl")


def test_a_csv_row_longer_than_a_block_is_resource_exhausted(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "BLOCK_SIZE", 4096)
    with pytest.raises(ResourceExhausted, match="limit of 4096 bytes"):
        _read(tmp_path, b"a,b\n1,2\n3,\"" + b"x" * 20_000 + b"\"\n", "csv")


# --- Parquet: refused from the footer and page headers, before anything is decompressed -------

def test_one_huge_cell_is_refused_from_the_footer(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_CELL_BYTES", 64 << 10)
    data = _parquet(pa.table({"id": [1], "note": ["a" * (1 << 20)]}), compression="zstd")
    assert len(data) < 8 << 10  # a megabyte in a few kilobytes
    _nothing_decompressed(monkeypatch)
    with pytest.raises(ResourceExhausted, match=f"note: values of .* the limit is {64 << 10} bytes per cell"):
        _read(tmp_path, data, "parquet")


def test_a_page_larger_than_a_batch_is_refused_from_its_header(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pyarrow puts up to 1024 values in a page: 64 values of 64 KiB make a 4 MiB page,
    # decompressed into one buffer whatever the batch size.
    monkeypatch.setattr(limits, "MAX_BATCH_BYTES", 1 << 20)
    data = _parquet(pa.table({"note": ["b" * (64 << 10)] * 64}), compression="zstd", use_dictionary=False)
    _nothing_decompressed(monkeypatch)
    with pytest.raises(ResourceExhausted, match=f"a page decompresses to .* the limit is {1 << 20} bytes per batch"):
        _read(tmp_path, data, "parquet")


def test_the_whole_upload_is_bounded(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_DECODED_BYTES", 1 << 20)
    # Two million zeros: a few kilobytes of run-length encoding, 16 MB once decoded.
    data = _parquet(pa.table({"n": pa.array([0] * 2_000_000, pa.int64())}), compression="zstd")
    _nothing_decompressed(monkeypatch)
    with pytest.raises(ResourceExhausted, match=f"the limit is {1 << 20} bytes per upload"):
        _read(tmp_path, data, "parquet")


def test_too_many_pages_are_refused(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_PARQUET_PAGES", 4)
    data = _parquet(pa.table({"n": list(range(10_000))}), data_page_size=64, write_batch_size=100)
    with pytest.raises(ResourceExhausted, match="more than the limit of 4 pages"):
        _read(tmp_path, data, "parquet")


def test_a_fixed_size_value_wider_than_a_cell_is_refused(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_CELL_BYTES", 16)
    data = _parquet(pa.table({"digest": pa.array([b"x" * 32], pa.binary(32))}))
    with pytest.raises(ResourceExhausted, match="values of 32 bytes; the limit is 16 bytes per cell"):
        _read(tmp_path, data, "parquet")


def test_a_deep_schema_is_refused_naming_the_limit(tmp_path: pathlib.Path) -> None:
    kind = pa.int64()
    for _ in range(limits.MAX_PARQUET_SCHEMA_DEPTH + 5):
        kind = pa.struct([("a", kind)])
    data = _parquet(pa.table({"x": pa.array([None], kind)}))
    with pytest.raises(InvalidArgument, match=f"limit of {limits.MAX_PARQUET_SCHEMA_DEPTH} levels"):
        _read(tmp_path, data, "parquet")


# --- Parquet: refused once read, before a batch goes on ------------------------------------------

def _one_entry_dictionary(rows: int, entry: int, **options) -> bytes:
    """`rows` values that all name one dictionary entry of `entry` bytes: a few kilobytes."""
    column = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array(["d" * entry]))
    return _parquet(pa.table({"id": list(range(rows)), "note": column}), compression="zstd",
                    dictionary_pagesize_limit=entry + (1 << 20), **options)


def test_a_dictionary_bomb_is_counted_before_it_is_decoded(tmp_path: pathlib.Path) -> None:
    # 2048 rows naming one 1 MiB entry: a few kilobytes of file, 2 GiB decoded (kept to what a
    # regression could survive; tests/security has the 64 GiB one, in a memory-limited process).
    # Without the file's Arrow schema a plain read would decode it all; read as indices, it is
    # counted instead.
    data = _one_entry_dictionary(2048, 1 << 20, store_schema=False)
    assert len(data) < 64 << 10
    peak = pa.default_memory_pool().max_memory()
    with pytest.raises(ResourceExhausted, match=f"the limit is {limits.MAX_BATCH_BYTES} bytes per batch"):
        _read(tmp_path, data, "parquet")
    assert pa.default_memory_pool().max_memory() < peak + (64 << 20)


def test_leading_nulls_do_not_hide_a_dictionary_bomb_from_the_probe(tmp_path: pathlib.Path) -> None:
    # The probe reads a group's first rows; with no value among them it loads no dictionary,
    # and the dictionary page's own size stands in for the longest entry.
    indices = pa.array([None] * (parquet_reader._PROBE_ROWS * 2) + [0] * 2048, pa.int32())
    column = pa.DictionaryArray.from_arrays(indices, pa.array(["d" * (1 << 20)]))
    data = _parquet(pa.table({"note": column}), compression="zstd", store_schema=False, dictionary_pagesize_limit=2 << 20)
    peak = pa.default_memory_pool().max_memory()
    with pytest.raises(ResourceExhausted, match="bytes per batch"):
        _read(tmp_path, data, "parquet")
    assert pa.default_memory_pool().max_memory() < peak + (64 << 20)


def test_short_dictionary_entries_stream_in_smaller_batches_and_count_to_the_upload_limit(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Entries below the long-entry mark are read plainly, in batches sized so that every row
    # repeating the longest entry stays under half a batch; the running total still stops them.
    monkeypatch.setattr(limits, "MAX_BATCH_BYTES", 4 << 20)
    data = _one_entry_dictionary(8192, 2048, store_schema=False)
    table = _read(tmp_path, data, "parquet")
    assert table.num_rows == 8192 and table["note"].type == pa.string()
    monkeypatch.setattr(limits, "MAX_DECODED_BYTES", 8 << 20)
    with pytest.raises(ResourceExhausted, match=f"more than the limit of {8 << 20} bytes per upload"):
        _read(tmp_path, data, "parquet")


def test_one_cell_past_the_limit_among_small_ones_is_refused(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_CELL_BYTES", 64 << 10)
    notes = [f"n{i}" for i in range(20_000)]
    notes[12_345] = "z" * (100 << 10)  # the average stays small: only reading finds it
    with pytest.raises(ResourceExhausted, match=f"column note: a value of {(100 << 10)} bytes; the limit is {64 << 10} bytes per cell"):
        _read(tmp_path, _parquet(pa.table({"note": notes})), "parquet")


def test_long_dictionary_entries_in_nested_columns_read_back_unchanged(tmp_path: pathlib.Path) -> None:
    # Entries past the long-entry mark make the reader take these columns as dictionary
    # indices, count them, then decode: what comes out is what a plain read gives.
    long = "L" * (parquet_reader._LONG_ENTRY + 1)
    table = pa.table({
        "id": list(range(300)),
        "tags": [[long, "t"] if i % 3 else None for i in range(300)],
        "info": [{"k": long, "n": i} for i in range(300)],
        "m": pa.array([[("a", long)]] * 300, pa.map_(pa.string(), pa.string())),
        "plain": [f"p{i}" for i in range(300)],
    })
    data = _parquet(table, compression="zstd")
    upload = spool([data], tmp_path, limit=1 << 30)
    try:
        plan = parquet_reader._parquet_plan(upload.path, pq.ParquetFile(upload.path))
        assert set(plan.dictionary_leaves) == {"tags.list.element", "info.k", "m.key_value.value", "m.key_value.key"}
    finally:
        upload.discard()
    assert _read(tmp_path, data, "parquet").equals(pq.read_table(io.BytesIO(data)))


def test_ordinary_files_read_as_before(tmp_path: pathlib.Path) -> None:
    table = pa.table({
        "id": list(range(5000)),
        "name": [f"name {i % 97}" for i in range(5000)],
        "score": [i / 7 for i in range(5000)],
        "tags": [[f"t{i % 5}"] * (i % 3) for i in range(5000)],
        "when": pa.array(range(5000), pa.timestamp("ms")),
    })
    for options in ({}, {"compression": "zstd", "row_group_size": 700}, {"use_dictionary": False}, {"data_page_version": "2.0"}):
        data = _parquet(table, **options)
        upload = spool([data], tmp_path, limit=1 << 30)
        try:
            plan = parquet_reader._parquet_plan(upload.path, pq.ParquetFile(upload.path))
            assert plan.dictionary_leaves == () and plan.batch_size == 64 * 1024
        finally:
            upload.discard()
        assert _read(tmp_path, data, "parquet").equals(table), options


@pytest.mark.parametrize("options", [{}, {"row_group_size": 700, "compression": "zstd"}, {"use_dictionary": False},
                                     {"data_page_version": "2.0", "write_statistics": False}])
def test_the_footer_reader_agrees_with_pyarrow(tmp_path: pathlib.Path, options: dict) -> None:
    # The checks read the footer with the Thrift reader rather than pyarrow's metadata objects:
    # building a ColumnChunkMetaData from a malformed footer (a size statistics histogram of
    # the wrong length, found by fuzzing) throws where nothing catches it, and the process aborts.
    import mmap

    table = pa.table({"id": list(range(3000)), "name": [f"n{i % 13}" if i % 11 else None for i in range(3000)],
                      "tags": [["a"] * (i % 3) for i in range(3000)]})
    path = tmp_path / "t.parquet"
    path.write_bytes(_parquet(table, **options))
    metadata = pq.ParquetFile(path).metadata
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        groups = list(_parquet_footer.row_groups(data))
    assert len(groups) == metadata.num_row_groups
    for r, (rows, chunks) in enumerate(groups):
        group = metadata.row_group(r)
        assert rows == group.num_rows and len(chunks) == group.num_columns
        for j, chunk in enumerate(chunks):
            theirs = group.column(j)
            nulls = theirs.statistics.null_count if theirs.is_stats_set and theirs.statistics.has_null_count else None
            expected = (theirs.num_values, theirs.total_uncompressed_size, theirs.total_compressed_size, theirs.data_page_offset,
                        theirs.dictionary_page_offset if theirs.has_dictionary_page else None, nulls)
            assert tuple(chunk) == expected


# --- the page-header reader ---------------------------------------------------------------------

def test_the_compact_reader_skips_every_thrift_type() -> None:
    # struct { 1: i32 7, 2: bool true, 3: binary "ab", 4: double, 5: list<bool>[t, f],
    #          6: map<i32, binary>{1: "x"}, 7: struct { 1: i64 -3 }, 20 (long form): i32 5 }
    data = bytes([
        0x15, 0x0E,                          # 1: i32 7 (zigzag 14)
        0x11,                                # 2: bool true
        0x18, 0x02, ord("a"), ord("b"),      # 3: binary
        0x17, *bytes(8),                     # 4: double
        0x19, 0x21, 0x01, 0x02,              # 5: list of 2 bools
        0x1B, 0x01, 0x58, 0x02, 0x01, ord("x"),  # 6: map of 1 (i32 -> binary)
        0x1C, 0x16, 0x05, 0x00,              # 7: struct { 1: i64 -3 }
        0x05, 0x28, 0x0A,                    # 20: i32 5, field id in long form
        0x00,
    ])
    reader = _parquet_footer.CompactReader(data)
    assert reader.struct() == {1: 7, 7: {1: -3}, 20: 5}
    assert reader.pos == len(data)
    with pytest.raises(_parquet_footer.Truncated):
        _parquet_footer.CompactReader(data[:-1]).struct()


@pytest.mark.parametrize("encoding", ["rot13", "zlib_codec", "hex", "base64", "no-such-codec"])
def test_a_csv_encoding_must_turn_bytes_into_text(encoding: str) -> None:
    """Red team F8: Python calls transforms codecs too; they reached the reader as INTERNAL."""
    from privet.governance.datasets.formats import CsvDialect
    from privet.governance.errors import InvalidArgument

    with pytest.raises(InvalidArgument) as err:
        CsvDialect("", "", encoding, True)
    assert err.value.field == "header.csv.encoding"


def test_an_upload_wider_than_the_column_limit_is_refused(tmp_path: pathlib.Path) -> None:
    from tests.unit.datasets._readers import read

    header = ",".join(f"c{i}" for i in range(limits.MAX_COLUMNS + 1))
    data = (header + "\n" + ",".join("1" for _ in range(limits.MAX_COLUMNS + 1)) + "\n").encode()
    with pytest.raises(ResourceExhausted) as err:
        read(tmp_path, data, "csv")
    assert str(limits.MAX_COLUMNS) in err.value.message
    assert read(tmp_path, (header.rsplit(",", 1)[0] + "\n" + ",".join("1" for _ in range(limits.MAX_COLUMNS)) + "\n").encode(),
                "csv").num_columns == limits.MAX_COLUMNS

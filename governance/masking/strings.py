"""Byte-level helpers over Arrow string arrays, in numpy: for rewrites that RE2 would do one
match at a time (an ASCII digit is one byte in UTF-8 and never part of another character)."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["ascii_digits", "digits_only", "string_bytes"]

_Strings = TypeVar("_Strings", pa.Array, pa.ChunkedArray)


def string_bytes(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets from 0, UTF-8 bytes) of a `string` array with no nulls."""
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset:arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    return offsets - offsets[0], raw[offsets[0]:offsets[-1]]


def ascii_digits(data: np.ndarray) -> np.ndarray:
    """Which of these UTF-8 bytes are ASCII digits."""
    return (data >= 0x30) & (data <= 0x39)


def digits_only(values: _Strings) -> _Strings:
    """Each string with everything but its ASCII digits removed: what replacing the regex
    `[^0-9]` with "" gives (non-ASCII characters go too: all their UTF-8 bytes are ≥ 0x80),
    ten times faster. Nulls stay null."""
    if isinstance(values, pa.ChunkedArray):
        return pa.chunked_array([digits_only(c) for c in values.chunks], type=pa.string())
    arr = values if values.type == pa.string() else values.cast(pa.string())
    if arr.null_count:
        return pc.if_else(arr.is_valid(), digits_only(arr.fill_null("")), pa.scalar(None, pa.string()))
    offsets, data = string_bytes(arr)
    keep = ascii_digits(data)
    kept_before = np.zeros(len(data) + 1, dtype=np.int64)
    np.cumsum(keep, out=kept_before[1:])
    return pa.Array.from_buffers(pa.string(), len(arr), [None, pa.py_buffer(kept_before[offsets].astype(np.int32)),
                                                          pa.py_buffer(np.ascontiguousarray(data[keep]))])

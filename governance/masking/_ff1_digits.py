"""FF1 over the digits of an Arrow string array, in numpy: the fast path of `tokenise`
with `alphabet="digits"`, which must give what `format_preserving` gives value by value.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from privet.governance.masking.ff1 import FF1
from privet.governance.masking.strings import ascii_digits, string_bytes, strings_from

__all__ = ["ff1_digits"]


def ff1_digits(distinct: pa.Array, cipher: FF1, tweak: bytes, fallback: Callable[[list[str]], list[str]], *,
               decrypt: bool) -> pa.Array:
    """FF1 on the digits of each value, in numpy: the values' digits are read off as one
    stream of numerals, each value's as its halves' numbers, encrypted a digit count at a
    time, and written back over the same bytes, so separators and letters stay where they
    were (an ASCII digit is one byte in UTF-8 and never part of another character). Values
    whose digits are too many for 64-bit halves, or too few for FF1, go through `fallback`."""
    offsets, data = string_bytes(distinct)
    where = np.flatnonzero(ascii_digits(data))  # every digit's byte, value after value
    bounds = np.searchsorted(where, offsets)
    first, count = bounds[:-1], np.diff(bounds)  # each value's digits: stream[first:first + count]
    stream = data[where] - np.uint8(0x30)
    fast = np.zeros(len(distinct), dtype=bool)
    for n in np.unique(count).tolist():
        if n < cipher.minlen or not cipher.numpy_ok(n):
            continue
        rows = np.flatnonzero(count == n)
        # Usually every value has this many digits: the stream itself, in rows, no gather.
        at = None if rows.size * n == stream.size else first[rows][:, None] + np.arange(n)
        numerals = stream.reshape(rows.size, n) if at is None else stream[at]
        numerals[:] = cipher.crypt_numerals(numerals, tweak, decrypt=decrypt)
        if at is not None:
            stream[at] = numerals
        fast[rows] = True
    out = data.copy()
    out[where] = stream + np.uint8(0x30)
    result = strings_from(offsets, out)
    slow = np.flatnonzero(~fast & (count > 0))
    if slow.size:
        mask = np.zeros(len(distinct), dtype=bool)
        mask[slow] = True
        result = pc.replace_with_mask(result, pa.array(mask), pa.array(fallback(distinct.take(pa.array(slow)).to_pylist()),
                                                                       type=pa.string()))
    return result

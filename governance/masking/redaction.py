"""Operators that hide characters where they stand: `keep`, `redact`, `partial_mask`, and
the letter-and-digit masking that `generalise_prefix` shares."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from privet.governance.errors import InvalidArgument
from privet.governance.masking._columns import Column, as_strings, map_chunks
from privet.governance.masking.strings import replace_bytes

__all__ = ["DEFAULT_REDACTION", "LETTER_OR_DIGIT", "keep", "mask_letters_and_digits", "partial_mask", "redact"]

DEFAULT_REDACTION = "[REDACTED]"
LETTER_OR_DIGIT = r"[\p{L}\p{N}]"  # RE2: a letter or a digit of any script


def keep(values: Column) -> Column:
    """The column unchanged."""
    return values


def redact(values: Column, token: str = DEFAULT_REDACTION) -> Column:
    """Every non-null value becomes `token`."""
    def one(chunk: pa.Array) -> pa.Array:
        return pc.if_else(chunk.is_null(), pa.scalar(None, pa.string()), pa.scalar(token, pa.string()))
    return map_chunks(values, one)


def partial_mask(values: Column, *, keep_first: int = 0, keep_last: int = 0, mask_char: str = "*") -> Column:
    """Keep the first `keep_first` and last `keep_last` characters; every other letter or
    digit becomes `mask_char`, separators stay (`****-****-****-1111`). A value no longer
    than what would be kept is masked whole, so a short value is never shown in full."""
    if keep_first < 0 or keep_last < 0:
        raise InvalidArgument("keep_first", "keep_first and keep_last must be ≥ 0")
    replacement = mask_char.replace("\\", "\\\\")

    def one(chunk: pa.Array) -> pa.Array:
        whole = pc.replace_substring_regex(chunk, LETTER_OR_DIGIT, replacement)
        if keep_first == 0 and keep_last == 0:
            return whole
        head = pc.utf8_slice_codeunits(chunk, 0, keep_first)
        middle = pc.utf8_slice_codeunits(chunk, keep_first, -keep_last if keep_last else None)
        tail = pc.utf8_slice_codeunits(chunk, -keep_last) if keep_last else pc.utf8_slice_codeunits(chunk, 0, 0)
        joined = pc.binary_join_element_wise(
            head, pc.replace_substring_regex(middle, LETTER_OR_DIGIT, replacement), tail, "")
        short = pc.less_equal(pc.utf8_length(chunk), keep_first + keep_last)
        return pc.if_else(short, whole, joined)

    return map_chunks(as_strings(values), one)


_ASCII_ALNUM = np.zeros(256, dtype=bool)
_ASCII_ALNUM[list(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")] = True


def mask_letters_and_digits(chunk: pa.Array, mask_char: str) -> pa.Array:
    """Every letter and digit becomes `mask_char`. An all-ASCII column with an ASCII mask is
    rewritten byte by byte in numpy (a regex replace pays per character matched); anything
    else goes through the Unicode-aware regex."""
    if len(chunk) == 0 or len(mask_char) != 1 or not mask_char.isascii() or chunk.null_count \
            or not pc.all(pc.string_is_ascii(chunk)).as_py():
        return pc.replace_substring_regex(chunk, LETTER_OR_DIGIT, mask_char.replace("\\", "\\\\"))
    return replace_bytes(chunk, lambda data: _ASCII_ALNUM[data], ord(mask_char))

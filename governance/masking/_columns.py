"""Arrow column plumbing shared by the detectors, the operators and k-anonymity: a column
chunk by chunk, as numpy, read as text, and computed once per distinct value. Each
function says which reading of a column it gives; the rules (classify, free_text, the
operators) pick one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from privet.governance.errors import InvalidArgument
from privet.governance.masking.strings import whole_numbers_as_digits

__all__ = ["Column", "as_numpy", "as_strings", "chunks", "distinct_cells", "map_chunks", "per_distinct", "require_text", "text_view"]

Column: TypeAlias = pa.Array | pa.ChunkedArray


def chunks(values: Column) -> list[pa.Array]:
    return list(values.chunks) if isinstance(values, pa.ChunkedArray) else [values]


def map_chunks(values: Column, fn: Callable[[pa.Array], pa.Array]) -> Column:
    """`fn` over each chunk, keeping the shape given (an empty ChunkedArray keeps the type
    `fn` would give)."""
    if isinstance(values, pa.ChunkedArray):
        mapped = [fn(c) for c in values.chunks]
        if not mapped:
            return pa.chunked_array([], type=fn(pa.array([], type=values.type)).type)
        return pa.chunked_array(mapped, type=mapped[0].type)
    return fn(values)


def as_numpy(values: Column) -> npt.NDArray[Any]:
    """The values as numpy, of whatever dtype Arrow's conversion gives."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    converted: npt.NDArray[Any] = values.to_numpy(zero_copy_only=False)
    return converted


# --- a column as text: the detectors' reading ---------------------------------------------

def text_view(values: Column) -> Column | None:
    """Strings as they are; dictionaries decoded; integers as decimal strings (an id or a
    phone number stored as a number is still one). None for anything else."""
    t = values.type
    if pa.types.is_dictionary(t):
        values = values.cast(t.value_type)
        t = values.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return values
    if pa.types.is_integer(t):
        return values.cast(pa.string())
    return None


def require_text(values: Column, what: str) -> Column:
    """`text_view`, or InvalidArgument naming `what` for a column it cannot read."""
    text = text_view(values)
    if text is None:
        raise InvalidArgument(what, f"expected strings, got {values.type}")
    return text


def distinct_cells(cells: pa.Array) -> tuple[pa.Array, npt.NDArray[np.signedinteger[Any]], npt.NDArray[np.bool_]]:
    """(distinct values, each cell's index into them, which cells are non-null): a test of a
    value need run once per distinct value, and low-cardinality columns are most of what
    a plan keeps and every later batch re-checks."""
    enc = pc.dictionary_encode(cells)
    index: npt.NDArray[np.signedinteger[Any]] = enc.indices.fill_null(0).to_numpy(zero_copy_only=False)
    valid: npt.NDArray[np.bool_] = enc.indices.is_valid().to_numpy(zero_copy_only=False)
    return enc.dictionary, index, valid


# --- a column as text: the operators' reading ---------------------------------------------

def as_strings(values: Column) -> Column:
    """Any column an operator can read as text: dictionaries decoded, floats and decimals
    with their whole values as integer digits (`whole_as_digits`), the rest cast. Raises
    InvalidArgument for a type Arrow cannot cast to strings."""
    t = values.type
    if pa.types.is_dictionary(t):
        values, t = values.cast(t.value_type), t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return values
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return _whole_as_digits(values)
    try:
        return values.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise InvalidArgument("values", f"cannot read a {t} column as text") from None


def _whole_as_digits(values: Column) -> Column:
    """Floats and decimals as text, whole values as integer digits: an id column pandas stored
    as float64 must hash and tokenise as the same integers would. Fractions keep Arrow's text."""
    return pc.coalesce(whole_numbers_as_digits(values), values.cast(pa.string()))


def per_distinct(values: Column, fn: Callable[[list[str]], list[str]] | None = None, *,
                 on_array: Callable[[pa.Array], pa.Array] | None = None) -> Column:
    """Apply `fn` (to a list) or `on_array` (to a string array) to the distinct non-null
    strings once; map every cell through it."""
    text = as_strings(values)
    encoded = pc.dictionary_encode(text)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.unify_dictionaries()
        if encoded.num_chunks == 0:
            return pa.chunked_array([], type=pa.string())
        dictionary = encoded.chunk(0).dictionary
    else:
        dictionary = encoded.dictionary
    if on_array is not None:
        mapped = on_array(dictionary.cast(pa.string()))
    else:
        assert fn is not None
        mapped = pa.array(fn(dictionary.to_pylist()), type=pa.string())
    if isinstance(encoded, pa.ChunkedArray):
        return pa.chunked_array([mapped.take(c.indices) for c in encoded.chunks], type=pa.string())
    return mapped.take(encoded.indices)

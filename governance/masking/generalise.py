"""Generalising operators: a number to its bin, a date to its day, month, year or decade, a
string to its prefix. k-anonymity climbs the same steps (`kanon.Hierarchy`)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from privet.governance.errors import InvalidArgument
from privet.governance.masking._columns import Column, as_strings, map_chunks
from privet.governance.masking.column_patterns import DATE_FORMATS
from privet.governance.masking.redaction import mask_letters_and_digits

__all__ = ["DATE_LEVELS", "generalise_date", "generalise_numeric", "generalise_prefix", "numeric_bounds", "parse_dates"]


def _numbers(values: Column) -> Column:
    t = values.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return values
    try:
        return as_strings(values).cast(pa.float64())
    except (pa.ArrowInvalid, InvalidArgument):
        raise InvalidArgument("values", f"numeric bins need numbers, got {t}") from None


def _format_numbers(values: Column, integral: bool) -> Column:
    return values.cast(pa.int64()).cast(pa.string()) if integral else values.cast(pa.string())


def numeric_bounds(values: Column, width: float) -> tuple[Column, Column, bool]:
    """Lower and upper bounds of each value's bin of `width`, and whether they are integers."""
    if not width > 0 or not math.isfinite(width):
        raise InvalidArgument("bins", "the bin width must be a positive number")
    numbers = _numbers(values)
    integral = (pa.types.is_integer(numbers.type) or pa.types.is_decimal(numbers.type)) and float(width).is_integer()
    lo = pc.multiply(pc.floor(pc.divide(numbers.cast(pa.float64()), float(width))), float(width))
    hi = pc.add(lo, float(width))
    return lo, hi, integral


def generalise_numeric(values: Column, width: float) -> Column:
    """Each number becomes its bin of `width` as a label: 37 with width 10 → `[30, 40)`."""
    lo, hi, integral = numeric_bounds(values, width)
    return pc.binary_join_element_wise("[", _format_numbers(lo, integral), ", ", _format_numbers(hi, integral), ")", "")


def parse_dates(values: Column) -> Column:
    """Dates from a date or timestamp column, or from strings in the common formats;
    anything else becomes null."""
    t = values.type
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        return values

    def parse(text: pa.Array) -> pa.Array:
        return pc.coalesce(*[pc.strptime(text, format=f, unit="s", error_is_null=True) for f in DATE_FORMATS])

    return _per_distinct(as_strings(values), parse)


def _per_distinct(values: Column, fn: Callable[[pa.Array], pa.Array]) -> Column:
    """`fn` over the distinct values once, mapped back to every row: a column of a million
    dates holds a few thousand, and parsing or formatting is what costs."""
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        if encoded.num_chunks == 0:
            return pa.chunked_array([], type=fn(pa.array([], values.type)).type)
        encoded = encoded.unify_dictionaries()
        mapped = fn(encoded.chunk(0).dictionary)
        return pa.chunked_array([mapped.take(c.indices) for c in encoded.chunks], type=mapped.type)
    return fn(encoded.dictionary).take(encoded.indices)


_DATE_LEVELS = {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}
DATE_LEVELS = ("day", "month", "year", "decade")  # finest first


def generalise_date(values: Column, level: str) -> Column:
    """Truncate dates to `level` ("day" → `1985-03-12`, "month" → `1985-03`, "year" →
    `1985`, "decade" → `1980s`). A value that is not a date becomes null: it cannot be
    generalised, and kept as is it might identify."""
    if level not in DATE_LEVELS:
        raise InvalidArgument("date", "expected 'day', 'month', 'year' or 'decade'")
    def truncate(dates: pa.Array) -> pa.Array:
        if level != "decade":
            return pc.strftime(dates, format=_DATE_LEVELS[level])
        decade = pc.multiply(pc.divide(pc.year(dates), 10), 10)  # integer division: years are int64
        return pc.binary_join_element_wise(decade.cast(pa.string()), "s", "")

    return _per_distinct(parse_dates(values), truncate)


def generalise_prefix(values: Column, length: int, mask_char: str = "*") -> Column:
    """Keep the first `length` characters; later letters and digits become `mask_char`:
    `75011` with 3 → `750**`."""
    if length < 0:
        raise InvalidArgument("prefix", "must be ≥ 0")

    def one(chunk: pa.Array) -> pa.Array:
        head = pc.utf8_slice_codeunits(chunk, 0, length)
        tail = mask_letters_and_digits(pc.utf8_slice_codeunits(chunk, length), mask_char)
        return pc.binary_join_element_wise(head, tail, "")

    return map_chunks(as_strings(values), one)

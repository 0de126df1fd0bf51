"""Generalising operators: a number to its bin, a date to its month or year, a string to
its prefix. k-anonymity climbs the same steps (`kanon.Hierarchy`)."""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.compute as pc

from privet.governance.errors import InvalidArgument
from privet.governance.masking._columns import Column, as_strings, map_chunks
from privet.governance.masking.column_patterns import DATE_FORMATS
from privet.governance.masking.redaction import mask_letters_and_digits

__all__ = ["generalise_date", "generalise_numeric", "generalise_prefix", "numeric_bounds", "parse_dates"]


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
    text = as_strings(values)
    return pc.coalesce(*[pc.strptime(text, format=f, unit="s", error_is_null=True) for f in DATE_FORMATS])


_DATE_LEVELS = {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}


def generalise_date(values: Column, level: str) -> Column:
    """Truncate dates to `level` ("month" → `1985-03`, "year" → `1985`). A value that is not
    a date becomes null: it cannot be generalised, and kept as is it might identify."""
    if level not in ("month", "year"):
        raise InvalidArgument("date", "expected 'month' or 'year'")
    return pc.strftime(parse_dates(values), format=_DATE_LEVELS[level])


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

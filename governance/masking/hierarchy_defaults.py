"""Hierarchies derived from the data, for the quasi-identifiers a profile gives none for
(or gives `{auto: true}`): withholding a whole column is the costliest generalisation
there is, so every column gets intermediate levels where its values allow them.

- numbers: bands of doubling width, from a round width that cuts the data's range into
  about `FINEST_BANDS` bands, up to the width where one band would hold every value
  (doubling, so each band is two of the band below and the levels nest);
- dates (date or timestamp columns, or strings that all read as dates): month, year,
  decade — with day first when the values carry times of day;
- codes (strings that all hold a digit, such as zips, of at most `MAX_CODE_LENGTH`
  characters): prefixes of every length, longest first (`02290` → `0229*` … `0****`);
- anything else (categories): the value or `*` — grouping categories needs a tree, which
  only the profile can give.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from privet.governance.masking._columns import Column, as_numpy
from privet.governance.masking.generalise import parse_dates
from privet.governance.masking.hierarchy import Hierarchy

__all__ = ["FINEST_BANDS", "MAX_CODE_LENGTH", "derive_hierarchies", "derive_hierarchy"]

FINEST_BANDS = 20
MAX_CODE_LENGTH = 16
_MAX_WIDTHS = 8  # doubling 8 times spans a factor of 256: past the range of any finest band
_SUPPRESS = Hierarchy("suppress")


def derive_hierarchy(values: Column) -> Hierarchy:
    """A hierarchy for `values` as the module docstring describes."""
    t = values.type
    if pa.types.is_dictionary(t):
        values, t = values.cast(t.value_type), t.value_type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return _bands(values)
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        return _dates(values)
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return _SUPPRESS
    text = values.drop_null() if isinstance(values, pa.Array) else pa.chunked_array(values.chunks, t).drop_null()
    if len(text) == 0:
        return _SUPPRESS
    if parse_dates(text).null_count == 0:
        return _dates(text)
    if pc.all(pc.match_substring_regex(text, r"\d")).as_py():
        longest = pc.max(pc.utf8_length(text)).as_py() or 0
        if 2 <= longest <= MAX_CODE_LENGTH:
            return Hierarchy("prefix", tuple(range(longest - 1, 0, -1)))
    return _SUPPRESS


def derive_hierarchies(table: pa.Table, hierarchies: Mapping[str, Hierarchy]) -> dict[str, Hierarchy]:
    """`hierarchies` with each "auto" one derived from its column of `table` (which must
    hold it); the others as they are."""
    return {name: derive_hierarchy(table.column(name)) if h.kind == "auto" else h for name, h in hierarchies.items()}


def _bands(values: Column) -> Hierarchy:
    numbers = values.cast(pa.float64())
    span = pc.min_max(numbers)
    lo, hi = span["min"].as_py(), span["max"].as_py()
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return _SUPPRESS
    width = _round_up((hi - lo) / FINEST_BANDS)
    whole = as_numpy(numbers.drop_null())
    if np.all(np.floor(whole) == whole):
        width = max(width, 2.0)  # bands of 1 over whole numbers are the values themselves
    widths: list[int | float] = []
    while math.floor(lo / width) != math.floor(hi / width) and len(widths) < _MAX_WIDTHS:
        widths.append(int(width) if width.is_integer() else width)
        width = float(f"{width * 2:.12g}")  # no binary fractions in the labels: 0.4, not 0.4000000001
    return Hierarchy("bins", tuple(widths)) if widths else _SUPPRESS


def _round_up(x: float) -> float:
    """The smallest of 1, 2, 5 × 10^e that is at least `x` (> 0)."""
    scale = 10.0 ** math.floor(math.log10(x))
    for step in (1, 2, 5, 10):
        if step * scale >= x * (1 - 1e-12):
            return float(f"{step * scale:.12g}")
    return 10 * scale


def _dates(values: Column) -> Hierarchy:
    seconds = as_numpy(parse_dates(values).cast(pa.timestamp("s")).drop_null()).astype("datetime64[s]").astype(np.int64)
    timed = bool(np.any(seconds % 86_400 != 0))
    return Hierarchy("date", (("day",) if timed else ()) + ("month", "year", "decade"))

"""Generalisation hierarchies of quasi-identifiers, as k-anonymity climbs them: level 0
is the value itself, the hierarchy's levels come next (coarser each time), and the last
level is `*` (the value withheld); each level has a per-row information loss (NCP)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from privet.governance.errors import InvalidArgument
from privet.governance.masking._columns import as_numpy
from privet.governance.masking.generalise import (
    generalise_date,
    generalise_numeric,
    generalise_prefix,
    parse_dates,
)

__all__ = ["Hierarchy", "Penalties", "not_null"]

Penalties = npt.NDArray[np.float64]  # per row, in [0, 1]
_TOP = "*"
_DATE_ORDER = ("month", "year")


@dataclass(frozen=True)
class Hierarchy:
    """How one quasi-identifier generalises. `kind` is "bins" (numeric, `levels` =
    increasing bin widths), "prefix" (strings, decreasing prefix lengths), "date"
    ("month" then "year"), or "suppress" (no intermediate level: the value or `*`)."""

    kind: str
    levels: tuple[Any, ...] = ()

    @classmethod
    def parse(cls, spec: Any, where: str) -> Hierarchy:
        """From a profile entry: `{bins: [5, 10, 20]}`, `{prefix: [4, 3, 2]}`,
        `{date: [month, year]}` or `{suppress: true}`. Raises InvalidArgument naming `where`."""
        if not isinstance(spec, Mapping) or len(spec) != 1:
            raise InvalidArgument(where, "expected one of {bins: [widths]}, {prefix: [lengths]}, "
                                         "{date: [month, year]}, {suppress: true}")
        (kind, levels), = spec.items()
        if kind == "suppress":
            if levels is not True:
                raise InvalidArgument(f"{where}.suppress", "expected true")
            return cls("suppress")
        if kind not in ("bins", "prefix", "date"):
            raise InvalidArgument(where, f"unknown hierarchy {kind!r}; expected bins, prefix, date or suppress")
        if not isinstance(levels, list) or not levels:
            raise InvalidArgument(f"{where}.{kind}", "expected a non-empty list")
        if kind == "bins":
            if not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0 for w in levels) \
                    or any(b <= a for a, b in itertools.pairwise(levels)):
                raise InvalidArgument(f"{where}.bins", "expected increasing positive bin widths")
        elif kind == "prefix":
            if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in levels) \
                    or any(b >= a for a, b in itertools.pairwise(levels)):
                raise InvalidArgument(f"{where}.prefix", "expected decreasing prefix lengths ≥ 0")
        else:
            if any(x not in _DATE_ORDER for x in levels) or list(levels) != sorted(levels, key=_DATE_ORDER.index) \
                    or len(set(levels)) != len(levels):
                raise InvalidArgument(f"{where}.date", "expected levels from [month, year], in that order")
        return cls(kind, tuple(levels))

    @property
    def labels(self) -> tuple[str, ...]:
        """One label per level, finest first: `original`, `bins:5`, …, `*`."""
        middle = tuple(x if self.kind == "date" else f"{self.kind}:{x}" for x in self.levels)
        return ("original",) + middle + (_TOP,)

    def generalise(self, values: pa.ChunkedArray | pa.Array, level: int) -> pa.Array | pa.ChunkedArray:
        """The column at `level` (1 .. len(labels)-1) as strings."""
        if level == len(self.labels) - 1:
            return pa.repeat(pa.scalar(_TOP, pa.string()), len(values))
        x = self.levels[level - 1]
        if self.kind == "bins":
            return generalise_numeric(values, x)
        if self.kind == "prefix":
            return generalise_prefix(values, x)
        return generalise_date(values, x)

    def ncp(self, values: pa.ChunkedArray | pa.Array, level: int) -> Penalties:
        """Per-row normalised certainty penalty at `level`, in [0, 1] (0 for nulls below `*`)."""
        n = len(values)
        if level == 0:
            return np.zeros(n)
        if level == len(self.labels) - 1:
            return np.ones(n)
        x = self.levels[level - 1]
        if self.kind == "bins":
            span = pc.min_max(values.cast(pa.float64()))
            width = (span["max"].as_py() or 0.0) - (span["min"].as_py() or 0.0)
            if width <= 0:
                return np.zeros(n)
            penalty: Penalties = np.minimum(1.0, float(x) / width) * not_null(values)
            return penalty
        if self.kind == "date":
            days = _as_numpy_days(parse_dates(values))
            valid = ~np.isnat(days)
            if valid.sum() < 2:
                return np.zeros(n)
            width = (days[valid].max() - days[valid].min()).astype(np.int64)
            if width <= 0:
                return np.zeros(n)
            unit = "M" if x == "month" else "Y"
            start = days.astype(f"datetime64[{unit}]")
            span = ((start + 1).astype("datetime64[D]") - start.astype("datetime64[D]")).astype(np.float64)
            return np.where(valid, np.minimum(1.0, span / float(width)), 0.0)
        # prefix: a categorical hierarchy; a group's penalty is its share of distinct values
        text = values.cast(pa.string()) if not pa.types.is_string(values.type) else values
        distinct = pc.unique(text).drop_null()
        total = len(distinct)
        if total <= 1:
            return np.zeros(n)
        groups = pc.value_counts(generalise_prefix(distinct, x))
        row_group = pc.index_in(generalise_prefix(text, x), value_set=groups.field("values"))
        sizes = pc.take(groups.field("counts"), row_group).fill_null(0)
        sizes = as_numpy(sizes).astype(np.float64)
        return np.where(sizes > 1, sizes / total, 0.0)


def not_null(values: pa.Array | pa.ChunkedArray) -> Penalties:
    """Per row, 1.0 where the value is not null."""
    return as_numpy(values.is_valid()).astype(np.float64)


def _as_numpy_days(dates: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.datetime64]:
    return as_numpy(dates.cast(pa.timestamp("s"))).astype("datetime64[D]")

"""Generalisation hierarchies of quasi-identifiers, as k-anonymity climbs them: level 0
is the value itself, the hierarchy's levels come next (coarser each time), and the last
level is `*` (the value withheld); each level has a per-row information loss (NCP).

Kinds: "bins" (numbers, increasing bin widths), "prefix" (strings, decreasing prefix
lengths), "date" (day, month, year, decade), "tree" (categories grouped by a tree the
profile gives), "suppress" (the value or `*`), and "auto": derived from the data when
k-anonymity plans (`hierarchy_defaults.derive_hierarchy`).
"""

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
from privet.governance.masking.category_tree import CategoryTree
from privet.governance.masking.generalise import (
    DATE_LEVELS,
    generalise_date,
    generalise_numeric,
    generalise_prefix,
    parse_dates,
)

__all__ = ["Hierarchy", "Penalties", "not_null"]

Penalties = npt.NDArray[np.float64]  # per row, in [0, 1]
_TOP = "*"
_SHAPES = ("expected one of {bins: [widths]}, {prefix: [lengths]}, {date: [day, month, year, decade]}, "
           "{tree: {group: [values]}}, {suppress: true}, {auto: true}")


@dataclass(frozen=True)
class Hierarchy:
    """How one quasi-identifier generalises: `kind` and its `levels` (bin widths, prefix
    lengths, date units, or for a tree the level numbers 1 .. height-1 with `tree` set).
    An "auto" hierarchy has no levels until `hierarchy_defaults.derive_hierarchy` gives it
    some from the data; it cannot generalise before then."""

    kind: str
    levels: tuple[Any, ...] = ()
    tree: CategoryTree | None = None

    @classmethod
    def parse(cls, spec: Any, where: str) -> Hierarchy:
        """From a profile entry: `{bins: [5, 10, 20]}`, `{prefix: [4, 3, 2]}`,
        `{date: [month, year]}`, `{tree: {Europe: [France, Germany], Asia: [Japan]}}`,
        `{suppress: true}` or `{auto: true}`. Raises InvalidArgument naming `where`
        (`where.bins`, … for a bad list of levels)."""
        if not isinstance(spec, Mapping) or len(spec) != 1:
            raise InvalidArgument(where, _SHAPES)
        (kind, levels), = spec.items()
        if kind in ("suppress", "auto"):
            if levels is not True:
                raise InvalidArgument(f"{where}.{kind}", "expected true")
            return cls(kind)
        if kind == "tree":
            tree = CategoryTree.parse(levels, f"{where}.tree")
            return cls("tree", tuple(range(1, tree.height)), tree)
        if kind not in ("bins", "prefix", "date"):
            raise InvalidArgument(where, f"unknown hierarchy {kind!r}; {_SHAPES}")
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
        elif any(x not in DATE_LEVELS for x in levels) \
                or any(DATE_LEVELS.index(b) <= DATE_LEVELS.index(a) for a, b in itertools.pairwise(levels)):
            raise InvalidArgument(f"{where}.date", "expected levels from [day, month, year, decade], in that order")
        return cls(kind, tuple(levels))

    @classmethod
    def at_label(cls, label: str, where: str) -> tuple[Hierarchy, int]:
        """A one-level hierarchy and its level that generalise as the level `label` (a
        `labels` entry, as a k-anonymity report records it: `bins:5`, `prefix:3`, `month`,
        `decade`, `*`) did. A tree level needs its tree and cannot be rebuilt from the
        label. Raises InvalidArgument naming `where`."""
        kind, _, argument = label.partition(":")
        try:
            if label == _TOP:
                return cls("suppress"), 1
            if label in DATE_LEVELS:
                return cls("date", (label,)), 1
            if kind == "bins":
                width = float(argument)
                return cls.parse({"bins": [int(width) if width.is_integer() else width]}, where), 1
            if kind == "prefix":
                return cls.parse({"prefix": [int(argument)]}, where), 1
        except (ValueError, OverflowError, InvalidArgument):
            pass
        raise InvalidArgument(where, f"unknown generalisation {label!r} (expected bins:W, prefix:N, "
                                     f"{', '.join(DATE_LEVELS)} or *)")

    @property
    def labels(self) -> tuple[str, ...]:
        """One label per level, finest first: `original`, `bins:5`, …, `*`."""
        self._require_levels()
        middle = tuple(x if self.kind == "date" else f"{self.kind}:{x}" for x in self.levels)
        return ("original",) + middle + (_TOP,)

    @property
    def nested(self) -> bool:
        """Whether each level's groups are unions of the previous level's (the k-anonymity
        search prunes only then). Bins nest when each width divides the next; prefixes,
        dates and trees always do."""
        if self.kind != "bins":
            return True
        ratios = (b / a for a, b in itertools.pairwise(self.levels))
        return all(abs(r - round(r)) < 1e-9 for r in ratios)

    def generalise(self, values: pa.ChunkedArray | pa.Array, level: int) -> pa.Array | pa.ChunkedArray:
        """The column at `level` (1 .. len(labels)-1) as strings."""
        if level == len(self.labels) - 1:
            return pa.repeat(pa.scalar(_TOP, pa.string()), len(values))
        x = self.levels[level - 1]
        if self.kind == "bins":
            return generalise_numeric(values, x)
        if self.kind == "prefix":
            return generalise_prefix(values, x)
        if self.kind == "tree":
            assert self.tree is not None  # set with kind "tree" by `parse`
            return self.tree.generalise(values, x)
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
            return _date_ncp(values, x)
        if self.kind == "tree":
            assert self.tree is not None
            return self.tree.ncp(values, x)
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

    def _require_levels(self) -> None:
        if self.kind == "auto":
            raise ValueError("an automatic hierarchy has no levels until derived from the data")


def not_null(values: pa.Array | pa.ChunkedArray) -> Penalties:
    """Per row, 1.0 where the value is not null."""
    return as_numpy(values.is_valid()).astype(np.float64)


def _date_ncp(values: pa.Array | pa.ChunkedArray, unit: str) -> Penalties:
    """A date's penalty at `unit`: the length of its day, month, year or decade over the
    span of all dates."""
    days = _as_numpy_days(parse_dates(values))
    valid = ~np.isnat(days)
    if valid.sum() < 2:
        return np.zeros(len(values))
    width = (days[valid].max() - days[valid].min()).astype(np.int64)
    if width <= 0:
        return np.zeros(len(values))
    if unit == "decade":
        years = days.astype("datetime64[Y]")
        start = years - (years.astype(np.int64) + 1970) % 10  # the decade's first year
        end = start + 10
    else:
        start = days.astype(f"datetime64[{unit[0].upper()}]")
        end = start + 1
    span = (end.astype("datetime64[D]") - start.astype("datetime64[D]")).astype(np.float64)
    return np.where(valid, np.minimum(1.0, span / float(width)), 0.0)


def _as_numpy_days(dates: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.datetime64]:
    return as_numpy(dates.cast(pa.timestamp("s"))).astype("datetime64[D]")

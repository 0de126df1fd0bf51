"""t-closeness (Li, Li and Venkatasubramanian, ICDE 2007): an equivalence class's
distribution of the sensitive attribute lies within Earth Mover's Distance t of the
whole table's, so that learning someone's class tells little more about their sensitive
value than the table as a whole does.

The ground distance is the paper's: for categories, every two values are 1 apart (the
EMD is then half the L1 distance, the total variation); for numbers, the i-th and j-th
of the m distinct values in order are |i − j| / (m − 1) apart (the EMD is then the
summed difference of the cumulative distributions over m − 1). Nulls count as one more
value: a category of their own, or for numbers one place past the largest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from privet.governance.masking._columns import Column, as_numpy

__all__ = ["SensitiveDistribution", "earth_movers_distance"]

_Floats = npt.NDArray[np.float64]
_Ints = npt.NDArray[np.int64]


def earth_movers_distance(p: npt.ArrayLike, q: npt.ArrayLike, *, ordered: bool) -> float:
    """EMD between two distributions over the same m values (in order, when `ordered`),
    as the module docstring defines it. A plain reference for one pair; the search uses
    `SensitiveDistribution.distances`. Requires equal lengths and each summing to 1."""
    diff = np.asarray(p, dtype=np.float64) - np.asarray(q, dtype=np.float64)
    if not ordered:
        return float(np.abs(diff).sum() / 2)
    if len(diff) < 2:
        return 0.0
    return float(np.abs(np.cumsum(diff)).sum() / (len(diff) - 1))


@dataclass(frozen=True, eq=False)
class SensitiveDistribution:
    """A sensitive column read once: each row's value as an index into the m distinct
    values (in order, for numbers) and the whole table's share of each."""

    codes: _Ints
    overall: _Floats
    ordered: bool

    @classmethod
    def of(cls, values: Column) -> SensitiveDistribution:
        t = values.type
        ordered = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
        if ordered:
            numbers = as_numpy(pc.fill_null(values.cast(pa.float64()), np.nan)).astype(np.float64)
            _, codes = np.unique(numbers, return_inverse=True)  # sorted; NaN (null) last
        else:
            encoded = pc.dictionary_encode(values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values,
                                           null_encoding="encode")
            codes = as_numpy(encoded.indices)
        codes = codes.astype(np.int64).reshape(-1)
        counts = np.bincount(codes)
        return cls(codes, counts / max(1, len(codes)), ordered)

    def distances(self, classes: _Ints, n_classes: int, rows: npt.NDArray[np.bool_] | None = None) -> _Floats:
        """The EMD of each class's distribution from the whole table's. `classes` gives
        each row's class (0 .. n_classes-1), for all rows or for those `rows` selects."""
        codes = self.codes if rows is None else self.codes[rows]
        q, m = self.overall, len(self.overall)
        if m < 2 or len(codes) == 0:
            return np.zeros(n_classes)
        pairs, counts = _count_pairs(classes * m + codes, n_classes * m)  # by class, then value
        cls, val = pairs // m, pairs % m
        p = counts / np.bincount(classes, minlength=n_classes)[cls]
        if not self.ordered:
            # ½ Σ|p − q| over all m values; the values a class lacks add their q, which is
            # 1 − Σ q over the values it has: one term per (class, value) present.
            present = np.bincount(cls, weights=np.abs(p - q[val]) - q[val], minlength=n_classes)
            return (0.5 * (1.0 + present)).astype(np.float64)
        return self._ordered(cls, val, p, n_classes)

    def _ordered(self, cls: _Ints, val: _Ints, p: _Floats, n_classes: int) -> _Floats:
        # Σ_i |P_i − Q_i| with P the class's cumulative distribution: P is constant from one
        # value the class holds to the next, and over such a run [a, b) Q rises, so the sum
        # splits where Q passes P and prefix sums of Q give both halves without a loop.
        m = len(self.overall)
        big_q = np.cumsum(self.overall)
        prefix = np.concatenate(([0.0], np.cumsum(big_q)))  # prefix[i] = Σ_{j<i} Q_j
        first = np.concatenate(([True], cls[1:] != cls[:-1]))
        running = np.cumsum(p)
        start = np.flatnonzero(first)
        before = np.repeat(running[start] - p[start], np.diff(np.append(start, len(p))))
        level = running - before  # P on the run that starts at this value
        last = np.append(first[1:], True)
        end = np.where(last, m, np.append(val[1:], m))  # a run ends at the class's next value, or at m
        split = np.clip(np.searchsorted(big_q, level, side="right"), val, end)
        runs = (level * (split - val) - (prefix[split] - prefix[val])
                + (prefix[end] - prefix[split]) - level * (end - split))
        # Before a class's first value P is 0: the run [0, first) adds Σ Q there.
        head = prefix[val[first]]
        total = np.bincount(cls, weights=runs, minlength=n_classes)
        total[cls[first]] += head
        distance: _Floats = total / (m - 1)
        return distance


def _count_pairs(pairs: _Ints, span: int) -> tuple[_Ints, _Ints]:
    """The distinct `pairs` (each below `span`), in order, and how often each occurs:
    counted in an array when `span` is not much larger than the rows, else sorted."""
    if span <= max(1 << 16, 4 * len(pairs)):
        counts = np.bincount(pairs, minlength=span)
        present = np.flatnonzero(counts)
        return present, counts[present]
    distinct, counts = np.unique(pairs, return_counts=True)
    return distinct, counts

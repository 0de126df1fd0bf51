"""The generalisation lattice k-anonymity searches, columnar: each quasi-identifier read
once at every level of its hierarchy (class codes, released values, per-row NCP); a *node*
picks one level per quasi-identifier; its equivalence classes come from counting a
mixed-radix key over the columns' codes (numpy `bincount`, after a dense renumbering when
the key space is much larger than the rows), checked against k, distinct ℓ-diversity and
t-closeness. `lattice_search` walks the nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from privet.governance.masking._columns import as_strings
from privet.governance.masking.closeness import SensitiveDistribution
from privet.governance.masking.generalise import parse_dates
from privet.governance.masking.hierarchy import Hierarchy, Penalties

__all__ = ["Classes", "Codes", "Criteria", "LevelColumn", "Node", "Rows", "class_keys", "classes_of", "lone_failures",
           "node_keys", "prepare", "released_keys", "released_text"]

Codes = npt.NDArray[np.int64]  # per row, a code
Rows = npt.NDArray[np.bool_]  # per row, a yes or no
Node = tuple[int, ...]

_T_SLACK = 1e-12  # EMDs are sums of floats: a class exactly at t must not fail by rounding
_DENSE = 1 << 16  # keys are counted in an array of at most max(this, 4 rows) entries


@dataclass
class LevelColumn:
    """One quasi-identifier at every level of its hierarchy."""

    name: str
    hierarchy: Hierarchy
    codes: list[Codes] = field(default_factory=list)            # per level: each row's code
    dictionaries: list[pa.Array] = field(default_factory=list)  # per level: the value of each code
    ncp: list[Penalties] = field(default_factory=list)           # per level: each row's NCP

    def restrict(self, rows: Rows) -> LevelColumn:
        return LevelColumn(self.name, self.hierarchy, [c[rows] for c in self.codes], self.dictionaries,
                           [x[rows] for x in self.ncp])

    def exact(self) -> LevelColumn:
        """This column with its values as the only level (indices as before: 0)."""
        return LevelColumn(self.name, self.hierarchy, self.codes[:1], self.dictionaries[:1], self.ncp[:1])

    @property
    def is_text(self) -> bool:
        """Whether its values are text, as every level above them is."""
        t = self.dictionaries[0].type
        return bool(pa.types.is_string(t) or pa.types.is_large_string(t))

    def only(self, levels: Sequence[int]) -> LevelColumn:
        """This column with only the intermediate `levels` (indices, 1 .. top-1, in
        order) between its values and `*`."""
        h, top = self.hierarchy, len(self.codes) - 1
        picked = [0, *levels, top]
        return LevelColumn(self.name, Hierarchy(h.kind, tuple(h.levels[i - 1] for i in levels), h.tree),
                           [self.codes[i] for i in picked], [self.dictionaries[i] for i in picked],
                           [self.ncp[i] for i in picked])

    def refines(self, finer: int, coarser: int) -> bool:
        """Whether every group at level `finer` lies within one group at level `coarser`."""
        top = len(self.codes) - 1
        return finer == coarser or finer == 0 or coarser == top or (finer < coarser and self.hierarchy.nested)


def prepare(table: pa.Table, hierarchies: dict[str, Hierarchy]) -> list[LevelColumn]:
    out = []
    for name, h in hierarchies.items():
        col = table.column(name)
        # Dates are read from text once, not once per level and again for its penalty.
        source = parse_dates(col) if h.kind == "date" else col
        qi = LevelColumn(name, h)
        for level in range(len(h.labels)):
            codes, dictionary = _encode(col if level == 0 else h.generalise(source, level))
            qi.codes.append(codes)
            qi.dictionaries.append(dictionary)
            qi.ncp.append(h.ncp(source, level))
        out.append(qi)
    return out


def _encode(values: pa.Array | pa.ChunkedArray) -> tuple[Codes, pa.Array]:
    enc = pc.dictionary_encode(values, null_encoding="encode")
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.unify_dictionaries()
        if not enc.num_chunks:
            return np.zeros(0, dtype=np.int64), pa.array([], values.type)
        dictionary = enc.chunk(0).dictionary
        idx = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in enc.chunks])
    else:
        dictionary, idx = enc.dictionary, enc.indices.to_numpy(zero_copy_only=False)
    return idx.astype(np.int64), dictionary


def class_keys(columns: Sequence[tuple[Codes, int]]) -> tuple[Codes, int]:
    """One key per row from each column's (codes, number of codes): equal keys, equal
    codes in every column. Also the number of possible keys (keys lie below it), kept
    small enough to count keys in an array: a mixed-radix key past that is renumbered
    densely (hashing), once at the end unless int64 would overflow first."""
    n = len(columns[0][0])
    key = np.zeros(n, dtype=np.int64)
    span = 1
    for codes, size in columns:
        size = max(1, size)
        if span * size >= 2**62:
            key, span = _renumber(key)
        key = key * size + codes
        span *= size
    if span > max(_DENSE, 4 * n):
        key, span = _renumber(key)
    return key, span


def _renumber(key: Codes) -> tuple[Codes, int]:
    codes, dictionary = _encode(pa.array(key))
    return codes, max(1, len(dictionary))


def node_keys(qis: Sequence[LevelColumn], node: Node) -> tuple[Codes, int]:
    return class_keys([(qi.codes[level], len(qi.dictionaries[level])) for qi, level in zip(qis, node)])


@dataclass(frozen=True, eq=False)
class Criteria:
    """What a released equivalence class must meet. `sensitive` (each row's value as a
    code below `values`, -1 for null) and `distribution` are per row of the table
    searched, when ℓ > 1 or t is given."""

    k: int
    ell: int = 1  # ℓ of distinct ℓ-diversity
    t: float | None = None
    sensitive: Codes | None = None
    values: int = 0
    distribution: SensitiveDistribution | None = None

    def restrict(self, rows: Rows) -> Criteria:
        sensitive = self.sensitive[rows] if self.sensitive is not None else None
        distribution = self.distribution
        if distribution is not None:
            distribution = replace(distribution, codes=distribution.codes[rows])
        return Criteria(self.k, self.ell, self.t, sensitive, self.values, distribution)


@dataclass(frozen=True, eq=False)
class Classes:
    """The equivalence classes of some rows: each row's class, and per class its size,
    whether it meets the criteria, and its distance from the whole table (with t)."""

    row_class: Codes
    sizes: npt.NDArray[np.int64]
    ok: npt.NDArray[np.bool_]
    distance: npt.NDArray[np.float64] | None

    @property
    def keep(self) -> Rows:
        kept: Rows = self.ok[self.row_class]
        return kept


def classes_of(keys: tuple[Codes, int], criteria: Criteria, *, distances: bool = False) -> Classes:
    """The classes of rows keyed `keys` (one key per row of the criteria's table, and the
    number of possible keys). Distances are computed with t, or when `distances` asks and
    there is a sensitive column."""
    row_class, sizes = _group(*keys)
    ok = sizes >= criteria.k
    if criteria.ell > 1 and criteria.sensitive is not None:
        ok &= _distinct(row_class, len(sizes), criteria.sensitive, criteria.values) >= criteria.ell
    distance = None
    if criteria.distribution is not None and (criteria.t is not None or distances):
        distance = criteria.distribution.distances(row_class, len(sizes))
        if criteria.t is not None:
            ok &= distance <= criteria.t + _T_SLACK
    return Classes(row_class, sizes, ok, distance)


def _group(key: Codes, span: int) -> tuple[Codes, npt.NDArray[np.int64]]:
    """Each row's class (0 .. classes-1) and each class's size, counted in an array of
    every possible key (`class_keys` keeps them few enough)."""
    counts = np.bincount(key, minlength=span)
    present = np.flatnonzero(counts)
    if len(present) == span:
        return key, counts
    remap = np.zeros(span, dtype=np.int64)
    remap[present] = np.arange(len(present))
    return remap[key], counts[present]


def _distinct(row_class: Codes, classes: int, sensitive: Codes, values: int) -> npt.NDArray[np.int64]:
    """Per class, the number of distinct non-null sensitive values."""
    valid = sensitive >= 0
    pairs = row_class[valid] * values + sensitive[valid]
    if classes * values <= max(_DENSE, 4 * len(row_class)):
        seen = np.bincount(pairs, minlength=classes * values) > 0
        distinct: npt.NDArray[np.int64] = seen.reshape(classes, values).sum(axis=1)
        return distinct
    return np.bincount(np.unique(pairs) // values, minlength=classes)


def lone_failures(codes: Codes, criteria: Criteria) -> Rows:
    """Per row: whether its group by this one column's codes alone fails k or ℓ. Its
    class under any node is a part of that group (no larger, no more diverse), so such a
    row fails under every node that holds the column at this level."""
    row_group, sizes = _group(codes, int(codes.max()) + 1 if len(codes) else 1)
    ok = sizes >= criteria.k
    if criteria.ell > 1 and criteria.sensitive is not None:
        ok &= _distinct(row_group, len(sizes), criteria.sensitive, criteria.values) >= criteria.ell
    fails: Rows = ~ok[row_group]
    return fails


def released_keys(qis: Sequence[LevelColumn], node: Node, recode_node: Node, recoded: Rows) -> tuple[Codes, int]:
    """Class keys of the values as released when the `recoded` rows take `recode_node`
    and the others `node`: a column at two levels is compared by its released text (what
    a reader of the table sees), so a recoded row joins any class whose values it shares."""
    columns = []
    for qi, level, other in zip(qis, node, recode_node):
        if level == other:
            columns.append((qi.codes[level], len(qi.dictionaries[level])))
            continue
        main, alt = released_text(qi.dictionaries[level]), released_text(qi.dictionaries[other])
        joint, dictionary = _encode(pa.concat_arrays([main, alt]))
        codes = np.where(recoded, joint[len(main):][qi.codes[other]], joint[:len(main)][qi.codes[level]])
        columns.append((codes, len(dictionary)))
    return class_keys(columns)


def released_text(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A column as released when its rows sit at different levels: all text."""
    return as_strings(values).cast(pa.string())

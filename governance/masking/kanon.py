"""k-anonymity (and distinct ℓ-diversity) by full-domain generalisation and suppression.

Each quasi-identifier has a generalisation hierarchy (`hierarchy`): level 0 is the value itself, the
hierarchy's levels come next (coarser each time), and the last level is `*` (the value
withheld). A *node* picks one level per quasi-identifier; every row is generalised to that
node, rows that then share all their quasi-identifier values form an equivalence class,
and rows in classes smaller than k (or with fewer than ℓ distinct sensitive values) are
suppressed (removed).

Among nodes that suppress at most `max_suppression` of the rows, the search keeps the one
with the least information loss: the normalised certainty penalty (NCP, Xu et al. 2006)
of the released cells, with a suppressed row counted as fully lost. It is a best-first
branch and bound over the lattice: the mean generalisation penalty of all rows is a lower
bound of a node's loss that needs no grouping, nodes are visited in order of it, and the
search stops when the bound reaches the best loss found; a node finer than one that
already needs too much suppression is skipped (if a coarser node fails, a finer one must).
Per-level generalised values, class keys and per-row NCP are columnar (pyarrow compute,
numpy); equivalence classes come from a pyarrow `group_by`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from privet.governance.errors import FailedPrecondition, InvalidArgument
from privet.governance.masking._columns import as_numpy
from privet.governance.masking.hierarchy import Hierarchy, Penalties, not_null

__all__ = [
    "MAX_LATTICE",
    "Hierarchy",
    "KAnonymityPlan",
    "KAnonymityReport",
    "is_k_anonymous",
    "k_anonymise",
    "plan_k_anonymity",
]

_Codes = npt.NDArray[np.int64]  # per row, its class's code
_Rows = npt.NDArray[np.bool_]  # per row, a yes or no

MAX_LATTICE = 20_000


@dataclass
class KAnonymityReport:
    """What k-anonymisation did. `levels`: the chosen level per quasi-identifier (a
    hierarchy label). `ncp`: mean NCP of the released quasi-identifier cells;
    `information_loss`: the same over all input rows with suppressed rows counted as 1
    (what the search minimises). `generalised_cells`: released non-null cells whose value
    was generalised."""

    k: int
    l: int
    sensitive: str | None
    max_suppression: float
    rows_in: int
    rows_out: int
    suppressed_rows: int
    levels: dict[str, str]
    ncp: float
    information_loss: float
    equivalence_classes: int
    smallest_class: int
    generalised_cells: int
    nodes_evaluated: int = 0
    lattice_size: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _QI:
    name: str
    hierarchy: Hierarchy
    codes: list[_Codes] = field(default_factory=list)      # per level: class codes
    cardinality: list[int] = field(default_factory=list)
    ncp: list[Penalties] = field(default_factory=list)     # per level: per-row NCP


def _codes(values: pa.Array | pa.ChunkedArray) -> tuple[_Codes, int]:
    enc = pc.dictionary_encode(values, null_encoding="encode")
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.unify_dictionaries()
        size = len(enc.chunk(0).dictionary) if enc.num_chunks else 0
        idx = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in enc.chunks]) if enc.num_chunks else np.zeros(0)
    else:
        size, idx = len(enc.dictionary), enc.indices.to_numpy(zero_copy_only=False)
    return idx.astype(np.int64), max(1, size)


def _prepare(table: pa.Table, hierarchies: Mapping[str, Hierarchy]) -> list[_QI]:
    qis = []
    for name, h in hierarchies.items():
        col = table.column(name)
        qi = _QI(name, h)
        for level in range(len(h.labels)):
            gen = col if level == 0 else h.generalise(col, level)
            codes, size = _codes(gen)
            qi.codes.append(codes)
            qi.cardinality.append(size)
            qi.ncp.append(h.ncp(col, level))
        qis.append(qi)
    return qis


def _class_keys(qis: Sequence[_QI], node: Sequence[int]) -> _Codes:
    key = np.zeros(len(qis[0].codes[0]), dtype=np.int64)
    span = 1
    for qi, level in zip(qis, node):
        size = qi.cardinality[level]
        if span * size >= 2**62:  # compact before the mixed-radix key could overflow
            key, span = _codes(pa.array(key))
        key = key * size + qi.codes[level]
        span *= size
    return key


def _classes(key: _Codes, sensitive: pa.ChunkedArray | None) -> tuple[npt.NDArray[Any], npt.NDArray[Any] | None, int]:
    """Per row: the size of its equivalence class and (with a sensitive column) the number
    of distinct sensitive values in it; and the number of classes."""
    columns = {"key": pa.array(key)}
    aggs: list[tuple[Any, ...]] = [("key", "count")]
    if sensitive is not None:
        columns["sensitive"] = sensitive.combine_chunks() if isinstance(sensitive, pa.ChunkedArray) else sensitive
        aggs.append(("sensitive", "count_distinct"))
    grouped = pa.table(columns).group_by("key").aggregate(aggs)
    row_class = pc.index_in(columns["key"], value_set=grouped.column("key"))
    sizes = as_numpy(pc.take(grouped.column("key_count"), row_class))
    distinct = as_numpy(pc.take(grouped.column("sensitive_count_distinct"), row_class)) if sensitive is not None else None
    return sizes, distinct, grouped.num_rows


def _kept(sizes: npt.NDArray[Any], distinct: npt.NDArray[Any] | None, k: int, l: int) -> _Rows:
    keep: _Rows = sizes >= k
    if distinct is not None:
        keep &= distinct >= l
    return keep


@dataclass(frozen=True, eq=False)
class KAnonymityPlan:
    """The decision k-anonymisation made over a whole table: the level of each
    quasi-identifier and which rows survive. `apply` carries it out, on the whole table
    or batch by batch (a streaming caller plans on the quasi-identifier columns alone,
    then applies the plan to each batch of the full table)."""

    hierarchies: Mapping[str, Hierarchy]
    levels: Mapping[str, int]
    keep: _Rows  # per planned row: whether it is released
    report: KAnonymityReport

    def apply(self, batch: pa.Table | pa.RecordBatch, offset: int = 0) -> pa.Table:
        """Generalise the quasi-identifiers of `batch` to the planned levels and drop its
        suppressed rows. Requires `batch` to hold rows offset .. offset+len(batch)-1 of
        the planned table, in order, with every quasi-identifier column.
        Raises InvalidArgument when the batch lies outside the planned rows or lacks a column."""
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        if offset < 0 or offset + table.num_rows > len(self.keep):
            raise InvalidArgument("offset", f"rows {offset}..{offset + table.num_rows} lie outside the "
                                            f"{len(self.keep)} planned rows")
        for name, level in self.levels.items():
            if name not in table.column_names:
                raise InvalidArgument("quasi_identifiers", f"no column {name!r} in the batch")
            if level > 0:
                col = self.hierarchies[name].generalise(table.column(name), level)
                table = table.set_column(table.column_names.index(name), name, col)
        return table.filter(pa.array(self.keep[offset:offset + table.num_rows]))


def plan_k_anonymity(table: pa.Table, hierarchies: Mapping[str, Hierarchy], k: int, *,
                     max_suppression: float = 0.05, sensitive: str | None = None,
                     l: int = 1) -> KAnonymityPlan:
    """Choose, over the columns of `hierarchies` (and distinct ℓ-diversity in `sensitive`
    when given), the generalisation with the least information loss that suppresses at
    most `max_suppression` of the rows. `table` needs only those columns.

    Raises InvalidArgument for bad k, ℓ, share, a missing column or an oversized lattice;
    FailedPrecondition when no node meets k (and ℓ) within the suppression bound."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InvalidArgument("k", "must be an integer ≥ 1")
    if not isinstance(l, int) or isinstance(l, bool) or l < 1:
        raise InvalidArgument("l_diversity", "ℓ must be an integer ≥ 1")
    if not 0 <= max_suppression <= 1:
        raise InvalidArgument("max_suppression", "must be a share in [0, 1]")
    for name in hierarchies:
        if name not in table.column_names:
            raise InvalidArgument("quasi_identifiers", f"no column {name!r} in the table")
    if sensitive is not None:
        if sensitive not in table.column_names:
            raise InvalidArgument("l_diversity", f"no sensitive column {sensitive!r} in the table")
        if sensitive in hierarchies:
            raise InvalidArgument("l_diversity", f"{sensitive!r} is also a quasi-identifier")
    n = table.num_rows
    names = list(hierarchies)
    if not names or n == 0 or (k == 1 and (sensitive is None or l == 1)):
        report = KAnonymityReport(k, l, sensitive, max_suppression, n, n, 0, {q: "original" for q in names},
                                  0.0, 0.0, n, 1 if n else 0, 0)
        return KAnonymityPlan(dict(hierarchies), {q: 0 for q in names}, np.ones(n, dtype=bool), report)

    heights = [len(hierarchies[q].labels) for q in names]
    lattice = int(np.prod(heights))
    if lattice > MAX_LATTICE:
        raise InvalidArgument("quasi_identifiers", f"{lattice} generalisation combinations; at most {MAX_LATTICE}")
    qis = _prepare(table, hierarchies)
    sens = table.column(sensitive) if sensitive is not None else None
    allowed = int(np.floor(max_suppression * n + 1e-9))
    width = len(qis)

    # Every row costs at least its generalisation penalty, kept or suppressed (a suppressed
    # row costs 1 ≥ any penalty), so the mean penalty over all rows bounds a node's loss
    # from below without grouping. Visit nodes by that bound; stop once it reaches the
    # best loss found. A node finer than one that needs too much suppression fails too.
    level_sums = [[float(x.sum()) for x in qi.ncp] for qi in qis]
    nodes = itertools.product(*(range(h) for h in heights))
    bounded = sorted(((sum(level_sums[q][lv] for q, lv in enumerate(nd)) / (n * width), nd) for nd in nodes),
                     key=lambda item: (item[0], sum(item[1]), item[1]))
    failed: list[tuple[int, ...]] = []
    best: tuple[float, int, tuple[int, ...]] | None = None
    evaluated = 0
    for bound, node in bounded:
        if best is not None and bound >= best[0]:
            break
        if any(all(a <= b for a, b in zip(node, f)) for f in failed):
            continue
        evaluated += 1
        sizes, distinct, _ = _classes(_class_keys(qis, node), sens)
        keep = _kept(sizes, distinct, k, l)
        suppressed = n - int(keep.sum())
        if suppressed > allowed:
            failed.append(node)
            continue
        penalty = sum(qi.ncp[level][keep].sum() for qi, level in zip(qis, node))
        loss = (penalty + suppressed * width) / (n * width)
        if best is None or (loss, sum(node)) < (best[0], best[1]):
            best = (loss, sum(node), node)
    if best is None:
        need = f"{k}-anonymous" + (f" and {l}-diverse in {sensitive!r}" if sensitive else "")
        raise FailedPrecondition(
            f"cannot make the table {need} over {', '.join(names)} while suppressing at most "
            f"{max_suppression:.1%} of {n} rows, even with every quasi-identifier fully generalised")

    loss, _, node = best
    keys = _class_keys(qis, node)
    sizes, distinct, _ = _classes(keys, sens)
    keep = _kept(sizes, distinct, k, l)
    rows_out = int(keep.sum())
    penalty = sum(qi.ncp[level][keep].sum() for qi, level in zip(qis, node))
    generalised_cells = sum(int((not_null(table.column(qi.name)).astype(bool) & keep).sum())
                            for qi, level in zip(qis, node) if level > 0)
    report = KAnonymityReport(
        k=k, l=l, sensitive=sensitive, max_suppression=max_suppression, rows_in=n, rows_out=rows_out,
        suppressed_rows=n - rows_out,
        levels={qi.name: qi.hierarchy.labels[level] for qi, level in zip(qis, node)},
        ncp=round(float(penalty / (rows_out * width)) if rows_out else 0.0, 6),
        information_loss=round(float(loss), 6),
        equivalence_classes=len(np.unique(keys[keep])) if rows_out else 0,
        smallest_class=int(sizes[keep].min()) if rows_out else 0,
        generalised_cells=generalised_cells, nodes_evaluated=evaluated, lattice_size=lattice,
    )
    return KAnonymityPlan(dict(hierarchies), {qi.name: level for qi, level in zip(qis, node)}, keep, report)


def k_anonymise(table: pa.Table, hierarchies: Mapping[str, Hierarchy], k: int, *,
                max_suppression: float = 0.05, sensitive: str | None = None,
                l: int = 1) -> tuple[pa.Table, KAnonymityReport]:
    """`plan_k_anonymity` and its `apply` on the whole table: returns the released table
    (quasi-identifiers above level 0 become strings; suppressed rows removed; row order
    kept) and the report. Raises as `plan_k_anonymity`."""
    plan = plan_k_anonymity(table, hierarchies, k, max_suppression=max_suppression, sensitive=sensitive, l=l)
    if plan.report.suppressed_rows == 0 and not any(plan.levels.values()):
        return table, plan.report
    return plan.apply(table), plan.report


def is_k_anonymous(table: pa.Table, quasi_identifiers: Sequence[str], k: int, *,
                   sensitive: str | None = None, l: int = 1) -> bool:
    """Whether every combination of the quasi-identifiers' values occurs at least k times
    (and, with `sensitive`, with at least ℓ distinct sensitive values). A direct check for
    tests and audits, independent of the search."""
    if table.num_rows == 0:
        return True
    aggs: list[tuple[Any, ...]] = [([], "count_all")]
    if sensitive is not None:
        aggs.append((sensitive, "count_distinct"))
    grouped = table.group_by(list(quasi_identifiers)).aggregate(aggs)
    ok = pc.all(pc.greater_equal(grouped.column("count_all"), k)).as_py()
    if sensitive is not None:
        ok = ok and pc.all(pc.greater_equal(grouped.column(f"{sensitive}_count_distinct"), l)).as_py()
    return bool(ok)


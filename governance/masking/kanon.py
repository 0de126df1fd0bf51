"""k-anonymity (with distinct ℓ-diversity and t-closeness) by full-domain generalisation,
local recoding and suppression.

Each quasi-identifier has a generalisation hierarchy (`hierarchy`): level 0 is the value
itself, the hierarchy's levels come next (coarser each time), and the last level is `*`
(the value withheld). One the profile gives none for is derived from the data
(`hierarchy_defaults`: bands, prefixes, dates), so the search can keep 10-year age bands
and a zip's first digit where a hierarchy stopping short would leave only `*`.

A *node* picks one level per quasi-identifier; every row is generalised to it, rows that
then share all their quasi-identifier values form an equivalence class, and classes
smaller than k (or with fewer than ℓ distinct sensitive values, or a sensitive
distribution farther than t from the whole table's) fail. Among nodes whose failing rows
are at most `max_suppression` of the table, the search (`lattice_search`) keeps the one
with the least information loss: the normalised certainty penalty (NCP, Xu et al. 2006)
of the released cells, with a suppressed row counted as fully lost. Derived hierarchies
first lose the levels no node could use and, with many quasi-identifiers, the levels least
likely to be chosen (`lattice_search.fit`), so that the search stays within seconds.

Local recoding then gives the failing rows a second chance, as ARX's local transformation
does: the same search over those rows alone finds the node under which most of them form
passing classes of their own (often coarser in the column that made them rare), and they
are released at that node's levels instead of suppressed; a class they form is checked
together with any kept rows that release the same values. Only the rows still failing are
suppressed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from privet.governance.errors import FailedPrecondition, InvalidArgument
from privet.governance.masking._columns import as_numpy
from privet.governance.masking.closeness import SensitiveDistribution
from privet.governance.masking.hierarchy import Hierarchy, not_null
from privet.governance.masking.hierarchy_defaults import derive_hierarchies
from privet.governance.masking.lattice import (
    Criteria,
    LevelColumn,
    Node,
    classes_of,
    node_keys,
    prepare,
    released_keys,
    released_text,
)
from privet.governance.masking.lattice_search import fit, search
from privet.governance.masking.reidentification import DEFAULT_THRESHOLD, ReidentificationRisk, risk_of_classes

__all__ = [
    "MAX_DERIVED_LATTICE",
    "MAX_LATTICE",
    "Hierarchy",
    "KAnonymityPlan",
    "KAnonymityReport",
    "is_k_anonymous",
    "k_anonymise",
    "plan_k_anonymity",
]

_Rows = npt.NDArray[np.bool_]  # per row, a yes or no

MAX_LATTICE = 20_000
# Derived hierarchies lose levels until the lattice is this small: the search's time grows
# with the nodes it groups, and many quasi-identifiers each with every level they could
# have would take minutes for little gain over every other level.
MAX_DERIVED_LATTICE = 2_000


@dataclass
class KAnonymityReport:
    """What k-anonymisation did. `levels`: the chosen level per quasi-identifier (a
    hierarchy label); `hierarchies`: every level the search could choose from.
    `ncp`: mean NCP of the released quasi-identifier cells, `column_ncp` the same per
    quasi-identifier; `information_loss`: the mean over all input rows with suppressed
    rows counted as 1 (what the search minimises). `generalised_cells`: released non-null
    cells whose value was generalised. `recoded_rows` were released at `recoded_levels`
    (local recoding) rather than suppressed. `max_distance`: the largest Earth Mover's
    Distance of a released class's sensitive values from the whole table's (with a
    sensitive column). `risk_before` / `risk_after`: re-identification risk of the input
    and of the released table (`reidentification`)."""

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
    column_ncp: dict[str, float] = field(default_factory=dict)
    hierarchies: dict[str, list[str]] = field(default_factory=dict)
    t_closeness: float | None = None
    max_distance: float | None = None
    recoded_rows: int = 0
    recoded_levels: dict[str, str] = field(default_factory=dict)
    risk_before: ReidentificationRisk | None = None
    risk_after: ReidentificationRisk | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class KAnonymityPlan:
    """The decision k-anonymisation made over a whole table: the level of each
    quasi-identifier, which rows survive, and which of them are recoded to
    `recoded_levels`. `apply` carries it out, on the whole table or batch by batch (a
    streaming caller plans on the quasi-identifier columns alone, then applies the plan
    to each batch of the full table)."""

    hierarchies: Mapping[str, Hierarchy]
    levels: Mapping[str, int]
    keep: _Rows  # per planned row: whether it is released
    report: KAnonymityReport
    recoded: _Rows | None = None  # per planned row: whether it is released at `recoded_levels`
    recoded_levels: Mapping[str, int] = field(default_factory=dict)

    def apply(self, batch: pa.Table | pa.RecordBatch, offset: int = 0) -> pa.Table:
        """Generalise the quasi-identifiers of `batch` to the planned levels and drop its
        suppressed rows. Requires `batch` to hold rows offset .. offset+len(batch)-1 of
        the planned table, in order, with every quasi-identifier column. A column whose
        recoded rows sit at another level is released as text in every batch, so that
        batches agree on its type.
        Raises InvalidArgument when the batch lies outside the planned rows or lacks a column."""
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        if offset < 0 or offset + table.num_rows > len(self.keep):
            raise InvalidArgument("offset", f"rows {offset}..{offset + table.num_rows} lie outside the "
                                            f"{len(self.keep)} planned rows")
        for name, level in self.levels.items():
            if name not in table.column_names:
                raise InvalidArgument("quasi_identifiers", f"no column {name!r} in the batch")
            col = table.column(name)
            out = col if level == 0 else self.hierarchies[name].generalise(col, level)
            other = self.recoded_levels.get(name, level)
            if other != level and self.recoded is not None:
                alt = col if other == 0 else self.hierarchies[name].generalise(col, other)
                mask = pa.array(self.recoded[offset:offset + table.num_rows])
                out = pc.if_else(mask, released_text(alt), released_text(out))
            if out is not col:
                table = table.set_column(table.column_names.index(name), name, out)
        return table.filter(pa.array(self.keep[offset:offset + table.num_rows]))


def plan_k_anonymity(table: pa.Table, hierarchies: Mapping[str, Hierarchy], k: int, *,
                     max_suppression: float = 0.05, sensitive: str | None = None, l: int = 1,
                     t: float | None = None, local_recoding: bool = True,
                     risk_threshold: float = DEFAULT_THRESHOLD) -> KAnonymityPlan:
    """Choose, over the columns of `hierarchies` ("auto" ones derived from the data), the
    generalisation with the least information loss that suppresses at most
    `max_suppression` of the rows; with `sensitive`, also distinct ℓ-diversity and (given
    t) t-closeness in it. With `local_recoding`, rows that generalisation would suppress
    are released at other levels where they can be (`recoded_levels`). `table` needs only those columns.

    Raises InvalidArgument for bad k, ℓ, t, share, a missing column or an oversized
    lattice; FailedPrecondition when no node meets the criteria within the suppression bound."""
    _check(table, hierarchies, k, l, t, max_suppression, sensitive)
    n = table.num_rows
    names = list(hierarchies)
    derived = {q for q, h in hierarchies.items() if h.kind == "auto"}
    smallest = math.prod(len(h.labels) for h in hierarchies.values() if h.kind != "auto") * 2 ** len(derived)
    if smallest > MAX_LATTICE:
        raise InvalidArgument("quasi_identifiers", f"{smallest} generalisation combinations; at most {MAX_LATTICE}")
    resolved = derive_hierarchies(table, hierarchies)
    settings = _Settings(k, l, sensitive, t, max_suppression, risk_threshold)
    if not names or n == 0 or (k == 1 and l == 1 and t is None):
        return _unchanged(table, resolved, settings)

    criteria = _criteria(table, k, l, t, sensitive)
    allowed = int(np.floor(max_suppression * n + 1e-9))
    qis = fit(prepare(table, resolved), derived, criteria, allowed, MAX_DERIVED_LATTICE)
    lattice = math.prod(len(qi.codes) for qi in qis)
    if lattice > MAX_LATTICE:
        raise InvalidArgument("quasi_identifiers", f"{lattice} generalisation combinations; at most {MAX_LATTICE}")
    found, evaluated = search(qis, criteria, allowed)
    if found is None:
        need = f"{k}-anonymous" + (f" and {l}-diverse in {sensitive!r}" if l > 1 else "") \
            + (f" and {t}-close in {sensitive!r}" if t is not None else "")
        raise FailedPrecondition(
            f"cannot make the table {need} over {', '.join(names)} while suppressing at most "
            f"{max_suppression:.1%} of {n} rows, even with every quasi-identifier fully generalised")
    recoded, recode_node = np.zeros(n, dtype=bool), found.node
    if local_recoding:
        recoded, recode_node, more = _recode(qis, criteria, found.node, found.keep)
        evaluated += more
    report = _report(table, qis, criteria, settings, found.node, found.keep | recoded, recoded, recode_node)
    report.nodes_evaluated, report.lattice_size = evaluated, lattice
    recoding = bool(recoded.any())
    return KAnonymityPlan({qi.name: qi.hierarchy for qi in qis},
                          {qi.name: level for qi, level in zip(qis, found.node)}, found.keep | recoded, report,
                          recoded if recoding else None,
                          {qi.name: level for qi, level in zip(qis, recode_node)} if recoding else {})


@dataclass(frozen=True)
class _Settings:
    """What was asked for, as the report restates it."""

    k: int
    l: int
    sensitive: str | None
    t: float | None
    max_suppression: float
    risk_threshold: float


def _unchanged(table: pa.Table, hierarchies: dict[str, Hierarchy], s: _Settings) -> KAnonymityPlan:
    """The plan that releases every row as it is (nothing asked for, or nothing to do)."""
    n, names = table.num_rows, list(hierarchies)
    sizes = _original_class_sizes(table, names)
    risk = _risk(sizes, s.risk_threshold)
    report = KAnonymityReport(
        s.k, s.l, s.sensitive, s.max_suppression, n, n, 0, {q: "original" for q in names}, 0.0, 0.0, len(sizes),
        int(sizes.min()) if n else 0, 0, column_ncp={q: 0.0 for q in names},
        hierarchies={q: list(h.labels) for q, h in hierarchies.items()}, t_closeness=s.t,
        risk_before=risk, risk_after=risk)
    return KAnonymityPlan(hierarchies, {q: 0 for q in names}, np.ones(n, dtype=bool), report)


def _report(table: pa.Table, qis: Sequence[LevelColumn], criteria: Criteria, s: _Settings, node: Node,
            released: _Rows, recoded: _Rows, recode_node: Node) -> KAnonymityReport:
    """The report of releasing the `released` rows at `node`, the `recoded` ones among
    them at `recode_node`: loss per column and overall, the classes as released, and the
    risk before and after."""
    n, rows_out, width = table.num_rows, int(released.sum()), len(qis)
    final = classes_of(_of_rows(released_keys(qis, node, recode_node, recoded), released),
                       criteria.restrict(released), distances=True)
    assert bool(final.ok.all()), "every released class meets the criteria"  # _recode dropped the rest
    before = classes_of(node_keys(qis, (0,) * width), Criteria(1)).sizes
    penalties = {qi.name: float(np.where(recoded, qi.ncp[b], qi.ncp[a])[released].sum())
                 for qi, a, b in zip(qis, node, recode_node)}
    generalised_cells = sum(
        int((not_null(table.column(qi.name)).astype(bool) & released & np.where(recoded, b > 0, a > 0)).sum())
        for qi, a, b in zip(qis, node, recode_node))
    return KAnonymityReport(
        k=s.k, l=s.l, sensitive=s.sensitive, max_suppression=s.max_suppression, rows_in=n, rows_out=rows_out,
        suppressed_rows=n - rows_out,
        levels={qi.name: qi.hierarchy.labels[level] for qi, level in zip(qis, node)},
        ncp=round(sum(penalties.values()) / (rows_out * width), 6) if rows_out else 0.0,
        information_loss=round((sum(penalties.values()) + (n - rows_out) * width) / (n * width), 6),
        equivalence_classes=len(final.sizes), smallest_class=int(final.sizes.min()) if rows_out else 0,
        generalised_cells=generalised_cells,
        column_ncp={q: round(p / rows_out, 6) if rows_out else 0.0 for q, p in penalties.items()},
        hierarchies={qi.name: list(qi.hierarchy.labels) for qi in qis}, t_closeness=s.t,
        max_distance=round(float(final.distance.max()), 6) if final.distance is not None and rows_out else None,
        recoded_rows=int(recoded.sum()),
        recoded_levels={qi.name: qi.hierarchy.labels[level] for qi, level in zip(qis, recode_node)}
        if recoded.any() else {},
        risk_before=_risk(before, s.risk_threshold), risk_after=_risk(final.sizes, s.risk_threshold),
    )


def _check(table: pa.Table, hierarchies: Mapping[str, Hierarchy], k: int, l: int, t: float | None,
           max_suppression: float, sensitive: str | None) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InvalidArgument("k", "must be an integer ≥ 1")
    if not isinstance(l, int) or isinstance(l, bool) or l < 1:
        raise InvalidArgument("l_diversity", "ℓ must be an integer ≥ 1")
    if t is not None:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= 1:
            raise InvalidArgument("t_closeness", "t must be a distance in (0, 1]")
        if sensitive is None:
            raise InvalidArgument("t_closeness", "needs a sensitive column")
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


def _criteria(table: pa.Table, k: int, l: int, t: float | None, sensitive: str | None) -> Criteria:
    if sensitive is None:
        return Criteria(k)
    column = table.column(sensitive).combine_chunks()
    encoded = pc.dictionary_encode(column)  # nulls stay null: ℓ counts only values
    codes = as_numpy(encoded.indices.fill_null(-1)).astype(np.int64)
    return Criteria(k, l, t, codes, len(encoded.dictionary), SensitiveDistribution.of(column))


def _recode(qis: Sequence[LevelColumn], criteria: Criteria, node: Node, keep: _Rows) -> tuple[_Rows, Node, int]:
    """Which failing rows to release at which node instead of suppressing them, and the
    nodes evaluated. They are searched alone, with no bound on suppression (what fails
    here is suppressed anyway); a recoded row whose released values join a class of kept
    rows is checked in that class, and dropped again if the class then fails (only
    t-closeness can fail that way: merging never shrinks a class or its distinct values).
    A column the node keeps exact and that is not text stays exact for them too: recoded
    rows would otherwise turn a number or date column into text for every row."""
    outliers = ~keep
    count = int(outliers.sum())
    none = np.zeros(len(keep), dtype=bool)
    if count < criteria.k:
        return none, node, 0
    candidates = [qi.restrict(outliers).exact() if level == 0 and not qi.is_text else qi.restrict(outliers)
                  for qi, level in zip(qis, node)]
    found, evaluated = search(candidates, criteria.restrict(outliers), count)
    if found is None or not found.keep.any():
        return none, node, evaluated
    recoded = none.copy()
    recoded[outliers] = found.keep
    released = keep | recoded
    joint = classes_of(_of_rows(released_keys(qis, node, found.node, recoded), released), criteria.restrict(released))
    recoded[np.flatnonzero(released)[~joint.keep]] = False
    return recoded, found.node, evaluated


def _of_rows(keys: tuple[npt.NDArray[np.int64], int], rows: _Rows) -> tuple[npt.NDArray[np.int64], int]:
    return keys[0][rows], keys[1]


def _risk(sizes: npt.NDArray[np.int64], threshold: float) -> ReidentificationRisk:
    return risk_of_classes(sizes, threshold=threshold)


def _original_class_sizes(table: pa.Table, names: Sequence[str]) -> npt.NDArray[np.int64]:
    if not table.num_rows:
        return np.zeros(0, dtype=np.int64)
    if not names:
        return np.array([table.num_rows], dtype=np.int64)
    grouped = table.select(list(names)).group_by(list(names)).aggregate([([], "count_all")])
    return as_numpy(grouped.column("count_all")).astype(np.int64)


def k_anonymise(table: pa.Table, hierarchies: Mapping[str, Hierarchy], k: int, *,
                max_suppression: float = 0.05, sensitive: str | None = None, l: int = 1,
                t: float | None = None, local_recoding: bool = True) -> tuple[pa.Table, KAnonymityReport]:
    """`plan_k_anonymity` and its `apply` on the whole table: returns the released table
    (quasi-identifiers above level 0 become strings; suppressed rows removed; row order
    kept) and the report. Raises as `plan_k_anonymity`."""
    plan = plan_k_anonymity(table, hierarchies, k, max_suppression=max_suppression, sensitive=sensitive, l=l,
                            t=t, local_recoding=local_recoding)
    if plan.report.suppressed_rows == 0 and not any(plan.levels.values()) and plan.recoded is None:
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

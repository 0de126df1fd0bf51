"""The search over the generalisation lattice (`lattice`) for the node of least loss.

A best-first branch and bound: the mean generalisation penalty of all rows is a lower
bound of a node's loss that needs no grouping (a suppressed row costs 1, more than any
penalty); nodes are visited in order of it, and the search stops when the bound reaches
the best loss found. Before grouping a node, the rows that fail by one quasi-identifier
alone (`lone_failures`) bound its suppression and its loss from below. A node finer than
one that needs too much suppression is skipped: sound where the levels nest, for k and ℓ
(splitting a class never makes it larger or more diverse) but not for t-closeness (a part
of a class can be closer to the whole table than the class), so a node that fails t in
its classes prunes nothing.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from privet.governance.masking.lattice import (
    Criteria,
    LevelColumn,
    Node,
    Rows,
    classes_of,
    lone_failures,
    node_keys,
)

__all__ = ["Searched", "fit", "search"]


@dataclass(frozen=True, eq=False)
class Searched:
    node: Node
    loss: float
    keep: Rows


def search(qis: Sequence[LevelColumn], criteria: Criteria, allowed: int) -> tuple[Searched | None, int]:
    """The node of least loss — the mean NCP of the released cells with a suppressed row
    counting 1 per cell — among those that suppress at most `allowed` rows (ties: the
    lower node); None when none does. Also the number of nodes evaluated (grouped)."""
    n, width = len(qis[0].codes[0]), len(qis)
    grid = np.array(list(itertools.product(*(range(len(qi.codes)) for qi in qis))), dtype=np.int64)
    sums = [np.array([float(x.sum()) for x in qi.ncp]) for qi in qis]
    bounds = np.sum([sums[q][grid[:, q]] for q in range(width)], axis=0) / (n * width)
    order = np.lexsort((*(grid[:, q] for q in reversed(range(width))), grid.sum(axis=1), bounds))
    refines = [np.array([[qi.refines(a, b) for b in range(len(qi.codes))] for a in range(len(qi.codes))],
                        dtype=bool) for qi in qis]
    dead = np.zeros(len(grid), dtype=bool)  # finer than a node that suppresses too much
    lone = [[lone_failures(codes, criteria) for codes in qi.codes] for qi in qis]
    best: Searched | None = None
    evaluated = 0
    for i in order:
        if best is not None and bounds[i] >= best.loss:
            break
        if dead[i]:
            continue
        node: Node = tuple(int(x) for x in grid[i])
        # A row whose value of one quasi-identifier alone is too rare fails under the node
        # whatever the others are (its class is no larger, nor more diverse): a bound on
        # suppression, and on loss, without grouping.
        doomed = np.logical_or.reduce([lone[q][level] for q, level in enumerate(node)])
        lost = int(doomed.sum())
        if lost > allowed:  # and at every finer node, where the lone groups are no larger
            dead |= _finer(grid, refines, node)
            continue
        if best is not None and lost:
            floor = sum(float(qi.ncp[level][~doomed].sum()) for qi, level in zip(qis, node)) + lost * width
            if floor / (n * width) >= best.loss:
                continue
        evaluated += 1
        keep = classes_of(node_keys(qis, node), criteria).keep
        lost = n - int(keep.sum())
        if lost > allowed:
            if criteria.t is None:  # t-closeness is not monotone: a finer node may pass
                dead |= _finer(grid, refines, node)
            continue
        penalty = sum(float(qi.ncp[level][keep].sum()) for qi, level in zip(qis, node))
        loss = (penalty + lost * width) / (n * width)
        if best is None or (loss, sum(node)) < (best.loss, sum(best.node)):
            best = Searched(node, loss, keep)
    return best, evaluated


def fit(qis: Sequence[LevelColumn], derived: Collection[str], criteria: Criteria, allowed: int,
        budget: int) -> list[LevelColumn]:
    """The quasi-identifiers with their `derived` hierarchies cut to the levels worth
    searching. A level whose values alone leave more than `allowed` rows in groups that
    fail is dropped: no node with it can pass. Then, while the lattice has more than
    `budget` nodes, the derived hierarchy with the most levels loses the one whose number
    of groups is farthest from an even share of the classes the table can hold,
    (rows / k) ** (1 / quasi-identifiers): many quasi-identifiers need coarse levels
    each, few can keep fine ones."""
    out = list(qis)
    n = len(qis[0].codes[0]) if qis else 0
    share = math.log(max(2.0, n / criteria.k)) / max(1, len(qis))
    levels = {i: [lv for lv in range(1, len(qi.codes) - 1) if int(lone_failures(qi.codes[lv], criteria).sum()) <= allowed]
              for i, qi in enumerate(out) if qi.name in derived}
    while math.prod(len(levels[i]) + 2 if i in levels else len(qi.codes) for i, qi in enumerate(out)) > budget:
        thinnable = [i for i in levels if len(levels[i]) > 1]
        if not thinnable:
            break
        i = max(thinnable, key=lambda q: (len(levels[q]), -q))
        groups = {lv: math.log(max(1, len(out[i].dictionaries[lv]))) for lv in levels[i]}
        levels[i].remove(max(levels[i], key=lambda lv: (abs(groups[lv] - share), lv)))
    for i, kept in levels.items():
        out[i] = out[i].only(kept)
    return out


def _finer(grid: npt.NDArray[np.int64], refines: Sequence[npt.NDArray[np.bool_]], node: Node) -> Rows:
    """Which nodes of `grid` refine `node` in every quasi-identifier."""
    finer: Rows = np.logical_and.reduce([table[grid[:, q], node[q]] for q, table in enumerate(refines)])
    return finer

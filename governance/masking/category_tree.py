"""A generalisation tree of categories, as a profile gives it:

    region: {tree: {Europe: {West: [France, Spain], Central: [Germany]}, Asia: [Japan]}}

Leaves are the column's values; each inner node names the group of the leaves below it.
Level j (1 .. height-1) takes every value to its ancestor j steps below the tree's height
(a leaf shallower than that stays itself), so each level groups whole groups of the level
before and the levels nest, as the k-anonymity search needs. A value the tree does not
know generalises to `*` at every level: it has no group, and kept it might identify.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from privet.governance.errors import InvalidArgument
from privet.governance.masking._columns import Column, as_numpy, as_strings, map_chunks

__all__ = ["CategoryTree"]

_TOP = "*"
_MAX_DEPTH = 32  # deeper than any real taxonomy; stops a hostile profile's recursion


@dataclass(frozen=True)
class CategoryTree:
    """Each leaf with its ancestors, root-most first. Build with `parse`."""

    paths: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def parse(cls, spec: Any, where: str) -> CategoryTree:
        """From a nested mapping whose innermost values are lists of leaves (strings or
        integers). Names are unique across the tree and never `*`; a single root is
        dropped (grouping everything, it says no more than `*`). Raises InvalidArgument
        naming `where`."""
        paths: list[tuple[str, tuple[str, ...]]] = []
        seen: set[str] = set()

        def name(x: Any, at: str) -> str:
            if isinstance(x, bool) or not isinstance(x, (str, int)) or str(x) in ("", _TOP):
                raise InvalidArgument(where, f"{at}: expected a category name, got {x!r}")
            text = str(x)
            if text in seen:
                raise InvalidArgument(where, f"{text!r} appears twice in the tree")
            seen.add(text)
            return text

        def walk(node: Any, ancestors: tuple[str, ...]) -> None:
            at = ".".join(ancestors) or "the top"
            if len(ancestors) > _MAX_DEPTH:
                raise InvalidArgument(where, f"deeper than {_MAX_DEPTH} levels")
            if isinstance(node, Mapping) and node:
                for key, child in node.items():
                    walk(child, (*ancestors, name(key, at)))
            elif isinstance(node, list) and node and ancestors:
                paths.extend((name(leaf, at), ancestors) for leaf in node)
            else:
                raise InvalidArgument(where, f"{at}: expected a non-empty mapping of groups, "
                                             "or a non-empty list of values inside a group")

        walk(spec, ())
        while len({path[0] for _, path in paths}) == 1 and all(len(path) > 1 for _, path in paths):
            paths = [(leaf, path[1:]) for leaf, path in paths]
        return cls(tuple(paths))

    @property
    def height(self) -> int:
        """The number of levels between the values and `*`, plus one."""
        return max(len(path) for _, path in self.paths) + 1

    def _level_names(self, level: int) -> tuple[pa.Array, pa.Array]:
        depth = self.height - level  # the depth (1 = top groups) a value climbs to
        leaves = [leaf for leaf, _ in self.paths]
        names = [leaf if len(path) < depth else path[depth - 1] for leaf, path in self.paths]
        return pa.array(leaves, pa.string()), pa.array(names, pa.string())

    def generalise(self, values: Column, level: int) -> Column:
        """Each value's group at `level` (1 .. height-1); `*` for a value not in the tree,
        null for null."""
        leaves, names = self._level_names(level)

        def one(chunk: pa.Array) -> pa.Array:
            found = pc.take(names, pc.index_in(chunk, value_set=leaves))
            return pc.if_else(chunk.is_valid(), pc.fill_null(found, _TOP), pa.scalar(None, pa.string()))

        return map_chunks(as_strings(values), one)

    def ncp(self, values: Column, level: int) -> npt.NDArray[np.float64]:
        """Per-row normalised certainty penalty at `level`: the share of the tree's leaves
        in the value's group (0 for a group of one, as for the value itself); 1 for a value
        not in the tree, 0 for null."""
        leaves, names = self._level_names(level)
        groups = pc.value_counts(names)
        sizes = as_numpy(pc.take(groups.field("counts"), pc.index_in(names, value_set=groups.field("values"))))
        per_leaf = np.where(sizes > 1, sizes / len(leaves), 0.0).astype(np.float64)
        text = as_strings(values)
        index = as_numpy(pc.fill_null(pc.index_in(text, value_set=leaves), -1)).astype(np.int64)
        valid = as_numpy(text.is_valid()).astype(bool)
        penalty: npt.NDArray[np.float64] = np.where(index >= 0, per_leaf[np.maximum(index, 0)], np.where(valid, 1.0, 0.0))
        return penalty

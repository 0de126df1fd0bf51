"""RE2 over whole columns (pyarrow.compute): which cells any recognizer's pattern matches,
each text split around its first match, and the token replacement of the recognizers whose
pattern is the whole check, which needs no Python at all.

A regex pass costs about the same whatever it finds, so these functions decide how many
passes to make and over which cells; what a match means is decided elsewhere."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from privet.governance.masking.entities import type_token
from privet.governance.masking.patterns import Recognizer
from privet.governance.masking.strings import slice_bytes

__all__ = ["first_match", "prefilter", "replace_exact", "union"]


def union(recs: Sequence[Recognizer]) -> str:
    """One alternation of the recognizers' patterns."""
    return "|".join(f"(?:{r.pattern})" for r in recs)


def prefilter(arr: pa.Array, recs: Sequence[Recognizer]) -> npt.NDArray[np.bool_]:
    """Which cells some pattern of `recs` matches (a null cell: none), in one pass."""
    if not recs or len(arr) == 0:
        return np.zeros(len(arr), dtype=bool)
    hit = pc.match_substring_regex(arr, union(recs))
    matched: npt.NDArray[np.bool_] = hit.fill_null(False).to_numpy(zero_copy_only=False)
    return matched


def first_match(texts: pa.Array, pattern: str) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(before, match, after) of each text's first match of `pattern`; every text has one.
    RE2 finds the span alone at a third of the cost of capturing all three parts."""
    spans = pc.extract_regex_span(texts, f"(?P<m>{pattern})").field("m")
    if spans.null_count:
        raise AssertionError("first_match: a text without a match")
    start, length = spans.flatten().to_numpy(zero_copy_only=False).reshape(-1, 2).T.astype(np.int64)
    end = start + length
    total = pc.binary_length(texts).to_numpy(zero_copy_only=False).astype(np.int64)
    return (slice_bytes(texts, np.zeros_like(start), start), slice_bytes(texts, start, end),
            slice_bytes(texts, end, total))


def _replace_where_matched(chunk: pa.Array, rec: Recognizer) -> pa.Array:
    """`rec`'s matches replaced by its token, rewriting only the cells that hold one: a
    regex match costs a third of a replace, and a literal every match holds (the '@' of
    an email) less still."""
    hit = pc.match_substring(chunk, rec.literal) if rec.literal else pc.match_substring_regex(chunk, rec.pattern)
    mask = hit.fill_null(False)
    if not pc.any(mask).as_py():
        return chunk
    replaced = pc.replace_substring_regex(chunk.filter(mask), rec.pattern, type_token(rec.type))
    return pc.replace_with_mask(chunk, mask, replaced)


def replace_exact(chunk: pa.Array, recs: Sequence[Recognizer]) -> pa.Array:
    """Every match of the exact recognizers (in order) replaced by its token. Those with no
    literal to test first are gated by one pass of their union: a regex pass costs about
    the same whatever the pattern, most text holds none of them (URLs, IP and MAC
    addresses), and each then runs only on the cells the union matched."""
    gated = [r for r in recs if not r.literal]
    rows = np.flatnonzero(prefilter(chunk, gated)) if len(gated) > 1 else None
    for rec in recs:
        if rows is None or rec.literal:
            chunk = _replace_where_matched(chunk, rec)
        elif rows.size:
            cells = chunk.take(pa.array(rows))
            replaced = _replace_where_matched(cells, rec)
            if replaced is not cells:
                mask = np.zeros(len(chunk), dtype=bool)
                mask[rows] = True
                chunk = pc.replace_with_mask(chunk, pa.array(mask), replaced.cast(chunk.type))
    return chunk

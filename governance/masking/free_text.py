"""Entities inside free text: find them (`scan_text`), or replace them by type tokens or
keyed pseudonyms (`replace_entities`, and `scan`, the operator profiles name).

Every entry point runs the recognizers' patterns as one RE2 pass over the column, keeps
the cells that matched, de-duplicates them, and hands only those distinct candidates to
the `Finder` rules; the types whose pattern is the whole check are replaced by a pyarrow
regex replace with no Python at all (see `detect` for why). Names, addresses and places,
which no pattern finds, come from the model in `names_and_places`, run on the distinct
cells an RE2 gate lets through (`NER_GATE`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from privet.governance.errors import InvalidArgument
from privet.governance.masking._batch_finder import BatchFinder
from privet.governance.masking._column_regex import prefilter, replace_exact
from privet.governance.masking._columns import Column, chunks, require_text
from privet.governance.masking.entities import TEXT_TYPES, Finding, PiiType
from privet.governance.masking.finding import FIRST, substitute
from privet.governance.masking.names_and_places import NER_TYPES, names_and_places
from privet.governance.masking.patterns import DETECTION_THRESHOLD, RECOGNIZERS, Recognizer
from privet.governance.masking.plain_forms import plain_forms
from privet.governance.masking.pseudonyms import Pseudonyms

__all__ = ["NER_GATE", "SCAN_MIN_SCORE", "replace_entities", "scan", "scan_text"]

# `replace_entities` masks findings from this score up: lower than the detection threshold,
# so a bare number that passes a national-id checksum is masked even without context.
SCAN_MIN_SCORE = 0.4


# The cells the names-and-places model reads: those with a capitalised word past the cell's
# first, or two capitalised words at its start ("Bob Kraft said"), CJK or Hangul script, or
# a short house number beside a capitalised word ("221B Baker", "Flores, 123"). Lower-case
# codes, tags, numbers (a phone followed by "about" is no address), blanks and sentences
# whose only capital is their first letter cost no model call. (The model is uncased, but
# names are written with capitals; see names_and_places._written_as_named.)
NER_GATE = (r"\S\s+\p{Lu}\p{Ll}|^\s*\p{Lu}\p{Ll}*\s+\p{Lu}|\p{Han}|\p{Hiragana}|\p{Katakana}|\p{Hangul}|"
            r"(?:^|[^0-9A-Za-z@.+\-/])[0-9]{1,5}[A-Za-z]?,? \p{Lu}\p{Ll}|\p{Lu}\p{Ll}+\.?,? [0-9]{1,5}(?:[^0-9]|$)")


def _ner_types(types: Iterable[PiiType | str] | None) -> tuple[PiiType, ...]:
    if types is None:
        return NER_TYPES
    wanted = {PiiType(t) for t in types if t in PiiType.__members__}
    return tuple(t for t in NER_TYPES if t in wanted)


def _ner_findings(chunk: pa.Array, types: tuple[PiiType, ...], min_score: float) -> dict[int, list[Finding]]:
    """Per cell of `chunk` (by position), the model's findings of `types`; the model reads
    each distinct gated cell once."""
    if not types or not len(chunk):
        return {}
    gated = np.flatnonzero(pc.match_substring_regex(chunk, NER_GATE).fill_null(False).to_numpy(zero_copy_only=False))
    if not gated.size:
        return {}
    enc = pc.dictionary_encode(chunk.take(pa.array(gated)))
    found = names_and_places().find(enc.dictionary.to_pylist(), types, min_score)
    return {cell: found[d] for cell, d in zip(gated.tolist(), enc.indices.to_numpy().tolist()) if found[d]}


def _text_recognizers(types: Iterable[PiiType | str] | None) -> tuple[Recognizer, ...]:
    """The recognizers of text types among `types` (all when None). Raises
    InvalidArgument naming an unknown type."""
    if types is None:
        recs = RECOGNIZERS
    else:
        wanted = set()
        for t in types:
            try:
                wanted.add(PiiType(t))
            except ValueError:
                raise InvalidArgument("types", f"unknown PII type {t!r}") from None
        recs = tuple(r for r in RECOGNIZERS if r.type in wanted)
    return tuple(r for r in recs if r.type in TEXT_TYPES)


def scan_text(values: Column, *, default_region: str = "US", types: Iterable[PiiType | str] | None = None,
              min_score: float = DETECTION_THRESHOLD) -> list[list[Finding]]:
    """The entities in each cell of a string column, as findings with spans in code
    points, non-overlapping, sorted by start. Null cells and cells no pattern matched
    have no findings. `default_region` (ISO 3166 alpha-2) reads phone numbers written
    without a country code.

    Raises InvalidArgument when `values` is not a string (or integer) column or `types`
    names an unknown type."""
    text = require_text(values, "values")
    recs = _text_recognizers(types)
    ner = _ner_types(types)
    finder = BatchFinder(recs, default_region.upper(), min_score)
    out: list[list[Finding]] = []
    for chunk in chunks(text):
        cells: list[list[Finding]] = [[] for _ in range(len(chunk))]
        idx = np.flatnonzero(prefilter(chunk, recs))
        if idx.size:
            enc = pc.dictionary_encode(chunk.take(pa.array(idx)))
            found = finder.find(enc.dictionary)
            for i, d in zip(idx.tolist(), enc.indices.to_numpy().tolist()):
                cells[i] = list(found[d])
        if ner:
            py: list[str | None] | None = None
            for i, named in _ner_findings(chunk, ner, min_score).items():
                py = py if py is not None else chunk.to_pylist()
                text = py[i]
                assert text is not None  # the gate matched it
                cells[i] = _merge_named(text, cells[i], named)
        out.extend(cells)
    return out


def replace_entities(values: Column, *, replace: Literal["token", "pseudonym"] = "token",
                     key: bytes | None = None, types: Iterable[PiiType | str] | None = None,
                     min_score: float = SCAN_MIN_SCORE, default_region: str = "US",
                     context: Mapping[PiiType, float] | None = None) -> Column:
    """Replace every entity found in free text by its type token (`<EMAIL>`) or, with
    `replace="pseudonym"` and a `key` (≥ 16 bytes), by a keyed pseudonym that is the same
    for the same entity everywhere the key is used. Nulls stay null; the rest of the text
    is untouched. Returns the same shape (Array or ChunkedArray) as given, as strings.

    `context` is the score boost the column lends each type (its name, its verdict:
    `ColumnClassification.context`), as a nearby keyword would.

    Raises InvalidArgument for a non-string column, an unknown type or replace mode, or a
    missing/short key in pseudonym mode."""
    if replace not in ("token", "pseudonym"):
        raise InvalidArgument("replace", f"expected 'token' or 'pseudonym', got {replace!r}")
    text = require_text(values, "values")
    pseudonyms = Pseudonyms(key) if replace == "pseudonym" else None
    recs = _text_recognizers(types)
    ner = _ner_types(types)
    vectorised = tuple(r for r in recs if r.exact and pseudonyms is None)
    in_python = tuple(r for r in recs if r not in vectorised)
    finder = BatchFinder(in_python, default_region.upper(), min_score, context)
    # Order matters as in resolve_overlaps: a URL may contain an address-like part.
    vectorised = tuple(sorted(vectorised, key=lambda r: FIRST.index(r.type) if r.type in FIRST else 99))
    out = []
    for chunk in chunks(text):
        chunk = replace_exact(plain_forms(chunk), vectorised)
        mask = prefilter(chunk, in_python)
        if mask.any():
            idx = pa.array(np.flatnonzero(mask))
            enc = pc.dictionary_encode(chunk.take(idx))
            replaced = finder.replace(enc.dictionary, pseudonyms).cast(chunk.type)
            chunk = pc.replace_with_mask(chunk, pa.array(mask), replaced.take(enc.indices))
        chunk = _replace_named(chunk, ner, min_score, pseudonyms)
        out.append(chunk)
    if isinstance(values, pa.ChunkedArray):
        return pa.chunked_array(out, type=text.type)
    return out[0]


def _merge_named(text: str, patterned: list[Finding], named: list[Finding]) -> list[Finding]:
    """The patterns' findings and the model's: a validated pattern keeps its span (a CEP is
    a postcode, not the start of an address), and a model finding keeps what is left of it
    outside the patterns' spans, as the replace path reads it after the patterns' tokens."""
    if not patterned:
        return named
    kept = list(patterned)
    for f in named:
        pieces = [(f.start, f.end)]
        for p in patterned:
            pieces = [piece for s, e in pieces for piece in ((s, min(e, p.start)), (max(s, p.end), e)) if piece[1] > piece[0]]
        for s, e in pieces:
            while s < e and not text[s].isalnum():
                s += 1
            while e > s and not text[e - 1].isalnum():
                e -= 1
            if sum(1 for ch in text[s:e] if ch.isalpha()) >= 2:
                kept.append(Finding(f.type, f.score, s, e))
    return sorted(kept, key=lambda x: x.start)


def _replace_named(chunk: pa.Array, types: tuple[PiiType, ...], min_score: float,
                   pseudonyms: Pseudonyms | None) -> pa.Array:
    """`chunk` with the model's names, addresses and places replaced (after the patterns'
    entities, whose tokens it reads as the words they stand for)."""
    named = _ner_findings(chunk, types, min_score)
    if not named:
        return chunk
    cells = sorted(named)
    texts = chunk.take(pa.array(cells)).to_pylist()
    replaced = [substitute(text, named[cell], pseudonyms) for cell, text in zip(cells, texts)]
    mask = np.zeros(len(chunk), dtype=bool)
    mask[cells] = True
    return pc.replace_with_mask(chunk, pa.array(mask), pa.array(replaced, type=chunk.type))


def scan(values: Column, *, replace: Literal["token", "pseudonym"] = "token", key: bytes | None = None,
         types: Iterable[PiiType | str] | None = None, min_score: float = SCAN_MIN_SCORE,
         default_region: str = "US", context: Mapping[PiiType, float] | None = None) -> Column:
    """Replace each entity found in free text by its type token (`<EMAIL>`), or with
    `replace="pseudonym"` by a keyed pseudonym (`<EMAIL_3fa94c0e1b2d7a55>`) that is the
    same wherever the same entity appears under the same key. See `replace_entities`."""
    return replace_entities(values, replace=replace, key=key, types=types,
                            min_score=min_score, default_region=default_region, context=context)

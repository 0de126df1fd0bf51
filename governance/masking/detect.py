"""Find personal data in pyarrow columns: classify structured columns by sampling, find
entities inside free text, and replace them.

The work is shaped by cost: a pyarrow regex over a whole column runs at millions of rows
a second, a Python validator (phonenumbers, a checksum) at tens of thousands. So every
entry point first runs the recognizers' patterns as one RE2 alternation over the column,
keeps the cells that matched, de-duplicates them (dictionary encoding), and only then
calls Python, once per distinct candidate string. A cell no pattern matched never reaches
Python. Replacing entities with type tokens for the types whose pattern is the whole
check (email, URL, IPv4, MAC) is a pyarrow regex replace with no Python at all.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from cryptography.hazmat.primitives import hashes, hmac

from privet.governance.errors import InvalidArgument
from privet.governance.masking.entities import TEXT_TYPES, Finding, PiiType, type_token
from privet.governance.masking.patterns import (
    ADDRESS_NUMBER_PATTERN,
    ADDRESS_PREFIX_PATTERN,
    ADDRESS_SHAPE_PATTERN,
    ADDRESS_STREET_PATTERN,
    CONTEXT_BOOST,
    DATE_FORMATS,
    DETECTION_THRESHOLD,
    LAYOUT_BYTES,
    PERSON_NAME_PATTERN,
    POSTAL_CODE_PATTERN,
    RECOGNIZERS,
    Recognizer,
    boosted,
    column_hints,
)
from privet.governance.masking.patterns import (
    MAX_SCORE as _MAX_BOOSTED,
)
from privet.governance.masking.strings import slice_bytes, translate_bytes, whole_numbers_as_digits

__all__ = [
    "DEFAULT_MIN_SHARE",
    "DEFAULT_SAMPLE",
    "SCAN_MIN_SCORE",
    "ColumnClassification",
    "classify_column",
    "replace_entities",
    "scan_text",
]

DEFAULT_SAMPLE = 1000
# A structured column is of a type when at least this share of its sampled cells validate.
DEFAULT_MIN_SHARE = 0.5
# `replace_entities` masks findings from this score up: lower than the detection threshold,
# so a bare number that passes a national-id checksum is masked even without context.
SCAN_MIN_SCORE = 0.4
# Findings of these types win overlaps: their patterns are the whole check, so token
# replacement runs them first, in this order, as pyarrow replaces.
_FIRST = (PiiType.URL, PiiType.EMAIL, PiiType.IP_ADDRESS, PiiType.MAC_ADDRESS)
_PSEUDONYM_HEX = 16
_ContextWindow = (40, 20)  # characters before and after a match searched for keywords
# A finding this sure claims its span: later recognizers do not validate inside it.
_CLAIMED = 0.8
# Texts per batch of candidates on which each recognizer's pattern is tried first (_masks).
_MASK_SAMPLE = 1024
# How CSV files spell a missing value ("", "N/A", "null": pyarrow's defaults, which ingestion
# reads with). A numeric column reads them as null; a string column keeps them as text.
_MISSING = pa.array(pacsv.ConvertOptions().null_values, pa.string())

Kind = Literal["structured", "free_text", "empty", "not_text", "opaque"]


# --- choosing recognizers ---------------------------------------------------------------

def _recognizers(types: Iterable[PiiType | str] | None) -> tuple[Recognizer, ...]:
    if types is None:
        return RECOGNIZERS
    wanted = set()
    for t in types:
        try:
            wanted.add(PiiType(t))
        except ValueError:
            raise InvalidArgument("types", f"unknown PII type {t!r}") from None
    return tuple(r for r in RECOGNIZERS if r.type in wanted)


def _union(recs: Sequence[Recognizer]) -> str:
    return "|".join(f"(?:{r.pattern})" for r in recs)


def _keyword_regex(rec: Recognizer) -> re.Pattern[str] | None:
    if not rec.keywords:
        return None
    words = "|".join(re.escape(k.strip()) for k in rec.keywords)
    return re.compile(rf"(?<!\w)(?:{words})(?!\w)", re.IGNORECASE)


_KEYWORDS = {id(r): _keyword_regex(r) for r in RECOGNIZERS}


# --- the Python side: spans and scores inside candidate strings -------------------------

class _Finder:
    """Finds entities in distinct candidate strings. Requires `texts` to be a pyarrow
    string array with no nulls; the per-recognizer RE2 masks say which recognizers are
    worth running in Python on which string."""

    def __init__(self, recs: Sequence[Recognizer], region: str, min_score: float,
                 hints: Mapping[PiiType, float] | None = None) -> None:
        self.recs = tuple(recs)
        self.region = region
        self.min_score = min_score
        self.hints = hints or {}
        self._memo: dict[tuple[int, str], tuple[int, int, float] | None] = {}
        self._scores: dict[tuple[int, str], float | None] = {}

    def find(self, texts: pa.Array) -> list[list[Finding]]:
        out: list[list[Finding]] = [[] for _ in range(len(texts))]
        py, per_cell = self._prepare(texts)
        for cell, recs in per_cell.items():
            out[cell] = self._find_one(py[cell], recs)
        return out

    def replace(self, texts: pa.Array, pseudonyms: _Pseudonyms | None) -> pa.Array:
        """Each text with its entities replaced, as `_substitute(text, find(...))` gives.

        Most texts hold one match of one recognizer; those are rewritten in pyarrow, with
        Python once per distinct match (its score, its replacement) and not per text.
        The rest take the general path; a text only one recognizer matched, whose matches
        do not depend on the words around them, still skips the overlap logic."""
        if not self._fresh(texts):
            return texts
        masks = self._masks(texts)
        alone = masks.sum(axis=0) == 1
        general = ~alone
        done_idx, done_val = [], []
        for i, rec in enumerate(self.recs):
            idx = np.flatnonzero(masks[i] & alone)
            if not idx.size:
                continue
            pre, matched, post = _first_match(texts.take(pa.array(idx)), rec.pattern)
            # One match only: nothing after the first matches again.
            single = ~pc.match_substring_regex(post, rec.pattern).to_numpy(zero_copy_only=False)
            one = idx[single]
            general[idx[~single]] = True
            if not one.size:
                continue
            keep = pa.array(single)
            pre, matched, post = pre.filter(keep), matched.filter(keep), post.filter(keep)
            enc = pc.dictionary_encode(matched)
            pieces = self._pieces(rec, enc.dictionary, pseudonyms)
            decided = pieces.is_valid().to_numpy(zero_copy_only=False)[enc.indices.to_numpy()]
            general[one[~decided]] = True
            rows = pa.array(np.flatnonzero(decided))
            piece = pieces.take(enc.indices.filter(pa.array(decided)))
            done_idx.append(one[decided])
            done_val.append(pc.binary_join_element_wise(pre.take(rows), piece, post.take(rows), ""))
        rest = np.flatnonzero(general)
        if rest.size:
            done_idx.append(rest)
            done_val.append(pa.array(self._replace_general(texts.take(pa.array(rest)), masks[:, rest], pseudonyms),
                                     type=pa.string()))
        if not done_idx:
            return texts
        order = np.concatenate(done_idx)
        values = pa.concat_arrays([v.cast(pa.string()) for v in done_val])
        out = texts.cast(pa.string())
        positions = np.zeros(len(texts), dtype=bool)
        positions[order] = True
        # replace_with_mask fills masked slots in order: sort the new values by position.
        return pc.replace_with_mask(out, pa.array(positions), values.take(pa.array(np.argsort(order, kind="stable"))))

    def _pieces(self, rec: Recognizer, distinct: pa.Array, pseudonyms: _Pseudonyms | None) -> pa.Array:
        """What each distinct match of `rec` becomes (`_piece`), null where its context
        decides. In token mode, a recognizer with a vectorised validator is decided in
        pyarrow for every match its scores settle (a whole valid phone number or IBAN; a
        refined span); only the rest reach Python."""
        n = len(distinct)
        vectorised = rec.validate_many is not None and pseudonyms is None and not self.hints.get(rec.type)
        if vectorised:
            pieces, todo, scores = self._pieces_vectorised(rec, distinct)
        else:
            pieces, todo = pa.nulls(n, pa.string()), np.ones(n, dtype=bool)
        rest = np.flatnonzero(todo)
        if not rest.size:
            return pieces
        texts = distinct.take(pa.array(rest)).to_pylist()
        if vectorised:
            self._keep_scores(rec, texts, scores[rest])
        self._prescore_matches(rec, texts)
        mask = np.zeros(n, dtype=bool)
        mask[rest] = True
        return pc.replace_with_mask(pieces, pa.array(mask),
                                    pa.array([self._piece(rec, t, pseudonyms) for t in texts], type=pa.string()))

    def _pieces_vectorised(self, rec: Recognizer, distinct: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
        """(pieces, undecided, whole-match scores): `GroupRefiner.pick` and `_piece` run
        a layout of spaces at a time, every span scored by `rec.validate_many`."""
        assert rec.validate_many is not None
        n = len(distinct)
        scores = rec.validate_many(distinct, self.region)
        best = scores.copy()  # REJECTED (-1) reads as "no span yet", as None does in pick
        lengths = pc.utf8_length(distinct).to_numpy(zero_copy_only=False).astype(np.int64)
        start, end = np.zeros(n, dtype=np.int64), lengths.copy()
        undecided = np.isnan(scores)
        if rec.refine is not None:
            good = rec.refine.good_enough
            candidates = np.flatnonzero(~undecided & (scores < good))
            opened = distinct.take(pa.array(candidates))
            layouts = pc.dictionary_encode(translate_bytes(opened, LAYOUT_BYTES))
            codes = layouts.indices.to_numpy(zero_copy_only=False)
            # Every shorter span of every layout, scored in one vectorised call (each call
            # pays for its regexes), then picked span by span as GroupRefiner.pick does.
            groups, subs = [], []
            for code, layout in enumerate(layouts.dictionary.to_pylist()):
                members = np.flatnonzero(codes == code)
                rows = candidates[members]
                group = opened.take(pa.array(members))
                spans = rec.refine.spans(layout)
                groups.append((rows, spans))
                subs += [pc.utf8_slice_codeunits(group, s, e) for s, e in spans]
            got_all = rec.validate_many(pa.concat_arrays(subs), self.region) if subs else np.zeros(0)
            at = 0
            for rows, spans in groups:
                done = np.zeros(rows.size, dtype=bool)
                for s, e in spans:
                    got = got_all[at:at + rows.size]
                    at += rows.size
                    undecided[rows[~done & np.isnan(got)]] = True
                    prior = best[rows]
                    better = ~done & (got >= 0) & ((prior < 0) | (got > prior))
                    best[rows[better]] = got[better]
                    start[rows[better]], end[rows[better]] = s, e
                    done |= better & (got >= good)
        found = ~undecided & (best >= 0)
        keep = found & (best >= self.min_score)
        if _KEYWORDS.get(id(rec)) is not None:  # a nearby keyword could lift it: context decides
            undecided |= found & ~keep & (best < 0.95) & (np.minimum(best + CONTEXT_BOOST, _MAX_BOOSTED) >= self.min_score)
        token = type_token(rec.type)
        whole = keep & (start == 0) & (end == lengths)
        pieces = pc.if_else(pa.array(whole), pa.scalar(token, pa.string()), distinct)
        refined = np.flatnonzero(keep & ~whole)  # a shorter span won: rare, built one by one
        if refined.size:
            texts = distinct.take(pa.array(refined)).to_pylist()
            built = [f"{m[:s]}{token}{m[e:]}" for m, s, e in zip(texts, start[refined].tolist(), end[refined].tolist())]
            mask = np.zeros(n, dtype=bool)
            mask[refined] = True
            pieces = pc.replace_with_mask(pieces, pa.array(mask), pa.array(built, type=pa.string()))
        pieces = pc.if_else(pa.array(undecided), pa.scalar(None, pa.string()), pieces)
        return pieces, undecided, scores

    def _replace_general(self, texts: pa.Array, masks: np.ndarray, pseudonyms: _Pseudonyms | None) -> list[str]:
        py, per_cell = self._per_cell(texts, masks)
        out = list(py)
        pieces: dict[tuple[int, str], str | None] = {}
        for cell, recs in per_cell.items():
            text = py[cell]
            got = self._replace_alone(text, recs[0], pseudonyms, pieces) if len(recs) == 1 else None
            if got is None:
                found = self._find_one(text, recs)
                got = _substitute(text, found, pseudonyms) if found else text
            out[cell] = got
        return out

    def _masks(self, texts: pa.Array) -> np.ndarray:
        """Per recognizer (rows), which texts (columns) its pattern matches. A regex pass
        costs about the same whatever it finds, and in most text most recognizers find
        nothing: those that match nothing in an even sample of the texts run first as one
        alternation, and each alone only on the texts that alternation matched."""
        out = np.zeros((len(self.recs), len(texts)), dtype=bool)
        if len(texts) <= 4 * _MASK_SAMPLE:
            common, rare = list(range(len(self.recs))), []
        else:
            sample = texts.take(pa.array(np.linspace(0, len(texts) - 1, _MASK_SAMPLE).astype(np.int64)))
            found = [pc.any(pc.match_substring_regex(sample, rec.pattern)).as_py() for rec in self.recs]
            common = [i for i, f in enumerate(found) if f]
            rare = [i for i, f in enumerate(found) if not f]
            if len(rare) == 1:
                common, rare = common + rare, []
        for i in common:
            out[i] = pc.match_substring_regex(texts, self.recs[i].pattern).to_numpy(zero_copy_only=False)
        if rare:
            some = np.flatnonzero(_prefilter(texts, [self.recs[i] for i in rare]))
            if some.size:
                subset = texts.take(pa.array(some))
                for i in rare:
                    out[i, some] = pc.match_substring_regex(subset, self.recs[i].pattern).to_numpy(zero_copy_only=False)
        return out

    def _fresh(self, texts: pa.Array) -> bool:
        """Start a batch: both memos are bounded by one batch of distinct strings. Whether
        there is anything to look for."""
        self._memo.clear()
        self._scores.clear()
        return len(texts) > 0 and bool(self.recs)

    def _prepare(self, texts: pa.Array) -> tuple[list[str], dict[int, list[Recognizer]]]:
        if not self._fresh(texts):
            return [], {}
        return self._per_cell(texts, self._masks(texts))

    def _per_cell(self, texts: pa.Array, masks: np.ndarray) -> tuple[list[str], dict[int, list[Recognizer]]]:
        """The texts as Python strings and, per text any pattern matched, the recognizers
        to run on it (in RECOGNIZERS order); batch validators have run on every match."""
        cells, which = np.nonzero(masks.T)
        py = texts.to_pylist()
        per_cell: dict[int, list[Recognizer]] = {}
        for cell, rec in zip(cells.tolist(), which.tolist()):
            per_cell.setdefault(cell, []).append(self.recs[rec])
        for i, rec in enumerate(self.recs):
            if rec.validate_many is not None:
                matched = {m.group() for c in np.flatnonzero(masks[i]).tolist() for m in rec.compiled.finditer(py[c])}
                self._prescore_matches(rec, list(matched))
        return py, per_cell

    def _replace_alone(self, text: str, rec: Recognizer, pseudonyms: _Pseudonyms | None,
                       pieces: dict[tuple[int, str], str | None]) -> str | None:
        """`text` with `rec`'s matches replaced, or None when a match's fate depends on
        the words around it (a keyword would lift it over the bar)."""
        parts: list[str] = []
        pos = 0
        for m in rec.compiled.finditer(text):
            matched = m.group()
            key = (id(rec), matched)
            if key not in pieces:
                pieces[key] = self._piece(rec, matched, pseudonyms)
            piece = pieces[key]
            if piece is None:
                return None
            parts.append(text[pos:m.start()])
            parts.append(piece)
            pos = m.end()
        parts.append(text[pos:])
        return "".join(parts)

    def _piece(self, rec: Recognizer, matched: str, pseudonyms: _Pseudonyms | None) -> str | None:
        """What one match becomes when nothing outside it matters; None when context does."""
        checked = self._checked(rec, matched)
        if checked is None:
            return matched
        s, e, score = checked
        boost = self.hints.get(rec.type, 0.0)
        if boost:
            keep = boosted(score, boost) >= self.min_score
        elif score >= self.min_score:
            keep = True
        elif _KEYWORDS.get(id(rec)) is not None and score < 0.95 and boosted(score, CONTEXT_BOOST) >= self.min_score:
            return None
        else:
            keep = False
        if not keep:
            return matched
        token = pseudonyms.token(rec.type, matched[s:e]) if pseudonyms else type_token(rec.type)
        return matched[:s] + token + matched[e:]

    def _prescore_matches(self, rec: Recognizer, matched: list[str]) -> None:
        """Score the distinct matches of `rec` (and the shorter spans its refiner would
        try) in vectorised calls, so that `_checked` mostly finds its scores ready."""
        if rec.validate_many is None:
            return
        self._prescore(rec, [t for t in matched if (id(rec), t) not in self._scores])
        if rec.refine is not None:
            good = rec.refine.good_enough
            short = {t[s:e] for t in matched
                     if (got := self._scores.get((id(rec), t), good)) is None or got < good
                     for s, e in rec.refine.spans(t)}
            self._prescore(rec, [t for t in short if (id(rec), t) not in self._scores])

    def _prescore(self, rec: Recognizer, texts: list[str]) -> None:
        if texts:
            assert rec.validate_many is not None
            self._keep_scores(rec, texts, rec.validate_many(texts, self.region))

    def _keep_scores(self, rec: Recognizer, texts: list[str], scores: np.ndarray) -> None:
        for text, score in zip(texts, scores.tolist()):
            if score == score:  # NaN: left to rec.validate
                self._scores[(id(rec), text)] = None if score < 0 else score

    def _find_one(self, text: str, recs: list[Recognizer]) -> list[Finding]:
        found: list[Finding] = []
        # Recognizers run in RECOGNIZERS order, the cheap and certain first; a candidate
        # inside a span an earlier one already claimed with confidence is not validated
        # again (a dashed SSN or an IP address also matches the phone pattern, and
        # phonenumbers is the slowest validator by far).
        for rec in recs:
            keywords = _KEYWORDS.get(id(rec))
            for m in rec.compiled.finditer(text):
                s, e = m.span()
                if found and any(f.score >= _CLAIMED and f.start < e and s < f.end for f in found):
                    continue
                checked = self._checked(rec, text[s:e])
                if checked is None:
                    continue
                s, e, score = s + checked[0], s + checked[1], checked[2]
                boost = self.hints.get(rec.type, 0.0)
                if not boost and keywords is not None and score < 0.95:
                    before, after = _ContextWindow
                    window = text[max(0, s - before):s] + " " + text[e:e + after]
                    if keywords.search(window):
                        boost = CONTEXT_BOOST
                if boost:
                    score = boosted(score, boost)
                if score >= self.min_score:
                    found.append(Finding(rec.type, round(score, 3), s, e))
        return _resolve_overlaps(found)

    def _checked(self, rec: Recognizer, matched: str) -> tuple[int, int, float] | None:
        """(start, end, score) of the entity inside `matched`, memoised per call of `find`:
        the same address or number mentioned in many cells is validated once."""
        key = (id(rec), matched)
        if key in self._memo:
            return self._memo[key]
        if rec.refine is not None:
            result = rec.refine.pick(matched, lambda text: self._score(rec, text))
        else:
            score = self._score(rec, matched)
            result = None if score is None else (0, len(matched), score)
        self._memo[key] = result
        return result

    def _score(self, rec: Recognizer, text: str) -> float | None:
        key = (id(rec), text)
        if key in self._scores:
            return self._scores[key]
        score = self._scores[key] = rec.validate(text, self.region)
        return score


def _first_match(texts: pa.Array, pattern: str) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(before, match, after) of each text's first match of `pattern`; every text has one.
    RE2 finds the span alone at a third of the cost of capturing all three parts."""
    spans = pc.extract_regex_span(texts, f"(?P<m>{pattern})").field("m")
    if spans.null_count:
        raise AssertionError("_first_match: a text without a match")
    start, length = spans.flatten().to_numpy(zero_copy_only=False).reshape(-1, 2).T.astype(np.int64)
    end = start + length
    total = pc.binary_length(texts).to_numpy(zero_copy_only=False).astype(np.int64)
    return (slice_bytes(texts, np.zeros_like(start), start), slice_bytes(texts, start, end),
            slice_bytes(texts, end, total))


def _resolve_overlaps(found: list[Finding]) -> list[Finding]:
    """Keep the best of overlapping findings: URL and email first (they are replaced
    first by the vectorised path), then the higher score, then the longer span."""
    if len(found) < 2:
        return found
    found.sort(key=lambda f: (f.type not in _FIRST, -f.score, f.start - f.end, f.start))
    kept: list[Finding] = []
    for f in found:
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    kept.sort(key=lambda f: f.start)
    return kept


# --- column plumbing ------------------------------------------------------------------

def _chunks(values: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return list(values.chunks) if isinstance(values, pa.ChunkedArray) else [values]


def _text_view(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray | None:
    """Strings as they are; dictionaries decoded; integers as decimal strings (an id or a
    phone number stored as a number is still one). None for anything else."""
    t = values.type
    if pa.types.is_dictionary(t):
        values = values.cast(t.value_type)
        t = values.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return values
    if pa.types.is_integer(t):
        return values.cast(pa.string())
    return None


def _require_text(values: pa.Array | pa.ChunkedArray, what: str) -> pa.Array | pa.ChunkedArray:
    text = _text_view(values)
    if text is None:
        raise InvalidArgument(what, f"expected strings, got {values.type}")
    return text


def _prefilter(arr: pa.Array, recs: Sequence[Recognizer]) -> np.ndarray:
    if not recs or len(arr) == 0:
        return np.zeros(len(arr), dtype=bool)
    hit = pc.match_substring_regex(arr, _union(recs))
    return hit.fill_null(False).to_numpy(zero_copy_only=False)


# --- scan_text ---------------------------------------------------------------------------

def scan_text(values: pa.Array | pa.ChunkedArray, *, default_region: str = "US",
              types: Iterable[PiiType | str] | None = None,
              min_score: float = DETECTION_THRESHOLD) -> list[list[Finding]]:
    """The entities in each cell of a string column, as findings with spans in code
    points, non-overlapping, sorted by start. Null cells and cells no pattern matched
    have no findings. `default_region` (ISO 3166 alpha-2) reads phone numbers written
    without a country code.

    Raises InvalidArgument when `values` is not a string (or integer) column or `types`
    names an unknown type."""
    text = _require_text(values, "values")
    recs = tuple(r for r in _recognizers(types) if r.type in TEXT_TYPES)
    finder = _Finder(recs, default_region.upper(), min_score)
    out: list[list[Finding]] = []
    for chunk in _chunks(text):
        cells: list[list[Finding]] = [[] for _ in range(len(chunk))]
        idx = np.flatnonzero(_prefilter(chunk, recs))
        if idx.size:
            enc = pc.dictionary_encode(chunk.take(pa.array(idx)))
            found = finder.find(enc.dictionary)
            for i, d in zip(idx.tolist(), enc.indices.to_numpy().tolist()):
                cells[i] = list(found[d])
        out.extend(cells)
    return out


# --- replace_entities -------------------------------------------------------------------

class _Pseudonyms:
    """The same entity always gets the same token: `<EMAIL_3fa94c0e1b2d7a55>`, an HMAC of
    the type and a normal form of the value under the caller's key."""

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) < 16:
            raise InvalidArgument("key", "a pseudonym key of at least 16 bytes is required")
        self._mac = hmac.HMAC(bytes(key), hashes.SHA256())
        self._cache: dict[tuple[PiiType, str], str] = {}

    def token(self, pii_type: PiiType, value: str) -> str:
        norm = _normal_form(pii_type, value)
        got = self._cache.get((pii_type, norm))
        if got is None:
            mac = self._mac.copy()
            mac.update(f"scan\x00{pii_type.value}\x00{norm}".encode())
            got = f"<{pii_type.value}_{mac.finalize().hex()[:_PSEUDONYM_HEX]}>"
            self._cache[(pii_type, norm)] = got
        return got


def _normal_form(pii_type: PiiType, value: str) -> str:
    if pii_type is PiiType.MAC_ADDRESS:  # one address, one pseudonym, however it is written
        hex_digits = re.sub(r"[^0-9a-f]", "", value.lower())
        return ":".join(hex_digits[i:i + 2] for i in range(0, len(hex_digits), 2))
    if pii_type in (PiiType.EMAIL, PiiType.URL):
        return value.strip().lower()
    if pii_type is PiiType.IP_ADDRESS:
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            return value.strip().lower()
    if pii_type is PiiType.PHONE:
        digits = "".join(ch for ch in value if ch.isdigit())
        return ("+" if value.lstrip().startswith("+") else "") + digits
    if pii_type is PiiType.DATE:
        return value.strip()
    return "".join(ch for ch in value if ch.isalnum()).upper()


def _substitute(text: str, findings: list[Finding], pseudonyms: _Pseudonyms | None) -> str:
    parts: list[str] = []
    pos = 0
    for f in findings:
        parts.append(text[pos:f.start])
        parts.append(pseudonyms.token(f.type, text[f.start:f.end]) if pseudonyms else type_token(f.type))
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts)


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


def _replace_exact(chunk: pa.Array, recs: Sequence[Recognizer]) -> pa.Array:
    """Every match of the exact recognizers (in order) replaced by its token. Those with no
    literal to test first are gated by one pass of their union: a regex pass costs about
    the same whatever the pattern, most text holds none of them (URLs, IP and MAC
    addresses), and each then runs only on the cells the union matched."""
    gated = [r for r in recs if not r.literal]
    rows = np.flatnonzero(_prefilter(chunk, gated)) if len(gated) > 1 else None
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


def replace_entities(values: pa.Array | pa.ChunkedArray, *, replace: Literal["token", "pseudonym"] = "token",
                     key: bytes | None = None, types: Iterable[PiiType | str] | None = None,
                     min_score: float = SCAN_MIN_SCORE, default_region: str = "US") -> pa.Array | pa.ChunkedArray:
    """Replace every entity found in free text by its type token (`<EMAIL>`) or, with
    `replace="pseudonym"` and a `key` (≥ 16 bytes), by a keyed pseudonym that is the same
    for the same entity everywhere the key is used. Nulls stay null; the rest of the text
    is untouched. Returns the same shape (Array or ChunkedArray) as given, as strings.

    Raises InvalidArgument for a non-string column, an unknown type or replace mode, or a
    missing/short key in pseudonym mode."""
    if replace not in ("token", "pseudonym"):
        raise InvalidArgument("replace", f"expected 'token' or 'pseudonym', got {replace!r}")
    text = _require_text(values, "values")
    pseudonyms = _Pseudonyms(key) if replace == "pseudonym" else None  # type: ignore[arg-type]
    recs = tuple(r for r in _recognizers(types) if r.type in TEXT_TYPES)
    vectorised = tuple(r for r in recs if r.exact and pseudonyms is None)
    in_python = tuple(r for r in recs if r not in vectorised)
    finder = _Finder(in_python, default_region.upper(), min_score)
    # Order matters as in _resolve_overlaps: a URL may contain an address-like part.
    vectorised = tuple(sorted(vectorised, key=lambda r: _FIRST.index(r.type) if r.type in _FIRST else 99))
    out = []
    for chunk in _chunks(text):
        chunk = _replace_exact(chunk, vectorised)
        mask = _prefilter(chunk, in_python)
        if mask.any():
            idx = pa.array(np.flatnonzero(mask))
            enc = pc.dictionary_encode(chunk.take(idx))
            replaced = finder.replace(enc.dictionary, pseudonyms).cast(chunk.type)
            chunk = pc.replace_with_mask(chunk, pa.array(mask), replaced.take(enc.indices))
        out.append(chunk)
    if isinstance(values, pa.ChunkedArray):
        return pa.chunked_array(out, type=text.type)
    return out[0]


# --- classify_column -------------------------------------------------------------------

@dataclass(frozen=True)
class ColumnClassification:
    """What a column holds.

    `kind`: `structured` (short values), `free_text` (prose), `empty` (no cell holds a
    value: all null, NaN, blank or a missing-value marker such as `N/A`), `not_text`
    (booleans, non-birth dates, fractional numbers with no identifier among their whole
    values: nothing to detect), or `opaque` (binary or nested values the detectors cannot
    read: a profile must name it).
    `pii_type`: the type most cells are (`FREE_TEXT` when the entities sit inside text
    or are too sparse to be the column's type), None when no PII was found.
    `found`: every type detected, primary first. `shares`: per type, the share of
    sampled cells holding a value that validated (with a full scan, of all such cells).
    `sampled`: how many cells holding a value were looked at."""

    name: str
    kind: Kind
    pii_type: PiiType | None
    found: tuple[PiiType, ...] = ()
    shares: Mapping[PiiType, float] = field(default_factory=dict)
    sampled: int = 0

    @property
    def is_pii(self) -> bool:
        return self.pii_type is not None


def _even_sample(values: pa.Array | pa.ChunkedArray, size: int) -> pa.Array:
    n = len(values)
    if n > size:
        values = values.take(pa.array(np.linspace(0, n - 1, size).round().astype(np.int64)))
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values


def _values_only(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The cells not null and, in a float column, not NaN (how pandas and numpy spell a
    missing number)."""
    values = values.drop_null()
    if pa.types.is_floating(values.type):
        values = values.filter(pc.invert(pc.is_nan(values)))
    return values


def _filled(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The text cells that hold a value: not blank, not a missing-value marker. In a CSV an
    empty cell is an empty string, not a null; counted, the blanks of a sparsely filled
    SSN or phone column would outvote the identifiers in the rest."""
    trimmed = pc.utf8_trim_whitespace(text)
    return text.filter(pc.invert(pc.is_in(trimmed, value_set=_MISSING.cast(trimmed.type))))


def _identifier_text(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray | None:
    """`_text_view`, and for floats and decimals their whole numbers as integer text
    (536221234.0 -> "536221234"): pandas stores an integer column with a missing value as
    float64, so an SSN or phone number may arrive as one. Fractions and infinities are
    null: no identifier is one."""
    if pa.types.is_floating(values.type) or pa.types.is_decimal(values.type):
        return whole_numbers_as_digits(values)
    return _text_view(values)


def _share(matched: pa.Array) -> float:
    """Share of cells matched; a null cell (a fraction in a number column) is not."""
    return pc.mean(matched.fill_null(False).cast(pa.float64())).as_py()


def _dob_share(values: pa.Array) -> float:
    """Share of cells that are a date a living person could be born on."""
    if pa.types.is_date(values.type) or pa.types.is_timestamp(values.type):
        dates = values
    else:
        parsed = [pc.strptime(values, format=f, unit="s", error_is_null=True) for f in DATE_FORMATS]
        dates = pc.coalesce(*parsed)
    years = pc.year(dates)
    ok = pc.and_(pc.greater_equal(years, 1900), pc.less_equal(years, _dt.date.today().year))
    return pc.sum(ok.fill_null(False).cast(pa.int64())).as_py() / max(1, len(values))


def _address_share(cells: pa.Array) -> float:
    """Share of cells shaped like a street address: short address-like text that begins
    with a Romance street type, or holds a house number and a street type (see
    patterns.ADDRESS_*). Four RE2 passes over the sample, no Python per cell."""
    def match(pattern: str) -> pa.BooleanArray:
        return pc.match_substring_regex(cells, pattern).fill_null(False)

    numbered = pc.and_(match(ADDRESS_NUMBER_PATTERN), match(ADDRESS_STREET_PATTERN))
    ok = pc.and_(match(ADDRESS_SHAPE_PATTERN), pc.or_(match(ADDRESS_PREFIX_PATTERN), numbered))
    return pc.sum(ok.cast(pa.int64())).as_py() / max(1, len(cells))


def _validate_all(rec: Recognizer, texts: list[str], region: str) -> list[float | None]:
    """`rec.validate` of each text, vectorised where the recognizer can."""
    if rec.validate_many is None:
        return [rec.validate(t, region) for t in texts]
    scores = rec.validate_many(texts, region).tolist()
    return [rec.validate(t, region) if s != s else (None if s < 0 else s) for t, s in zip(texts, scores)]


def _distinct_cells(cells: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(distinct values, each cell's index into them, which cells are non-null): a test of a
    value need run once per distinct value, and low-cardinality columns are most of what
    a plan keeps and every later batch re-checks."""
    enc = pc.dictionary_encode(cells)
    return (enc.dictionary, enc.indices.fill_null(0).to_numpy(zero_copy_only=False),
            enc.indices.is_valid().to_numpy(zero_copy_only=False))


def _structured_shares(sample: pa.Array, region: str, hints: Mapping[PiiType, float]) -> dict[PiiType, np.ndarray]:
    """Per type, which sampled cells are wholly (after trimming) a valid entity."""
    hits: dict[PiiType, np.ndarray] = {}
    distinct, cell_index, valid = _distinct_cells(sample)
    for rec in RECOGNIZERS:
        if rec.type is PiiType.DATE:
            continue
        matched = pc.match_substring_regex(distinct, f"^(?:{rec.pattern})$").fill_null(False)
        idx = np.flatnonzero(matched.to_numpy(zero_copy_only=False))
        if not idx.size:
            continue
        boost = hints.get(rec.type, 0.0)
        ok = np.zeros(len(distinct), dtype=bool)
        ok[idx] = [
            s is not None and boosted(s, boost) >= DETECTION_THRESHOLD
            for s in _validate_all(rec, distinct.take(pa.array(idx)).to_pylist(), region)
        ]
        cell_ok = ok[cell_index] & valid
        hits[rec.type] = hits[rec.type] | cell_ok if rec.type in hits else cell_ok
    return hits


def classify_column(name: str, values: pa.Array | pa.ChunkedArray, *, sample: int = DEFAULT_SAMPLE,
                    default_region: str = "US", min_share: float = DEFAULT_MIN_SHARE,
                    full_scan: bool = False, max_candidates: int = 20_000) -> ColumnClassification:
    """Classify a column by what an even sample of `sample` cells holding a value holds
    (not null, NaN, blank or a missing-value marker: an empty CSV cell is no evidence).
    Integers, and the whole values of floats and decimals, are read as digits.

    A type is the column's when at least `min_share` of the sampled cells validate as it
    (the column's name lends context: `ssn` lets a bare 9-digit number count as an SSN,
    and dates of birth, postal codes, person names and street addresses are only
    considered in columns named for them). Types whose shape alone is evidence (email,
    URL, IP, MAC, IBAN, NINO, codice fiscale) count at any share. Prose columns are scanned for entities.

    With `full_scan`, a text column the sample found clean is checked whole: every
    cell goes through the regex prefilter and up to `max_candidates` distinct candidates
    through the validators, so PII in a handful of rows is not missed.

    Raises InvalidArgument for a sample size below 1 or a share outside (0, 1]."""
    if sample < 1:
        raise InvalidArgument("sample", "must be at least 1")
    if not 0 < min_share <= 1:
        raise InvalidArgument("min_share", "must be in (0, 1]")
    region = default_region.upper()
    hints = column_hints(name)
    t = values.type
    if pa.types.is_dictionary(t):
        values, t = values.cast(t.value_type), t.value_type
    if pa.types.is_nested(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t) \
            or pa.types.is_fixed_size_binary(t) or pa.types.is_binary_view(t):
        return ColumnClassification(name, "opaque", None)
    non_null = _values_only(values)
    n = len(non_null)
    if n == 0:
        return ColumnClassification(name, "empty", None)

    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        if PiiType.DATE_OF_BIRTH not in hints:
            return ColumnClassification(name, "not_text", None, sampled=min(n, sample))
        share = _dob_share(_even_sample(non_null, sample))
        is_dob = share >= min_share
        return ColumnClassification(name, "structured", PiiType.DATE_OF_BIRTH if is_dob else None,
                                    (PiiType.DATE_OF_BIRTH,) if is_dob else (), {PiiType.DATE_OF_BIRTH: share},
                                    min(n, sample))
    text = _identifier_text(non_null)
    fractional = pa.types.is_floating(t) or pa.types.is_decimal(t)
    if text is None or (fractional and text.null_count == n):
        return ColumnClassification(name, "not_text", None, sampled=min(n, sample))
    numeric = fractional or pa.types.is_integer(t)
    if not numeric:
        text = _filled(text)
        n = len(text)
        if n == 0:
            return ColumnClassification(name, "empty", None)

    raw = _even_sample(text, sample)
    cells = pc.utf8_trim_whitespace(raw)
    size = len(cells)
    hit = _structured_shares(cells, region, hints)
    shares = {k: float(v.mean()) for k, v in hit.items() if v.any()}
    if PiiType.POSTAL_CODE in hints:
        shares[PiiType.POSTAL_CODE] = _share(pc.match_substring_regex(cells, POSTAL_CODE_PATTERN))
    if PiiType.PERSON_NAME in hints:
        shares[PiiType.PERSON_NAME] = _share(pc.match_substring_regex(cells, PERSON_NAME_PATTERN))
    if PiiType.DATE_OF_BIRTH in hints:
        shares[PiiType.DATE_OF_BIRTH] = _dob_share(cells)
    if PiiType.ADDRESS in hints:
        shares[PiiType.ADDRESS] = _address_share(cells)
    shares = {k: v for k, v in shares.items() if v > 0}

    distinctive = {r.type for r in RECOGNIZERS if r.distinctive}
    majority = sorted((k for k, v in shares.items() if v >= min_share), key=lambda k: -shares[k])
    sparse = [k for k, v in shares.items() if k in distinctive and 0 < v < min_share]

    words = pc.mean(pc.add(pc.count_substring_regex(cells, r"\s+"), 1).cast(pa.float64())).as_py() or 0.0
    prose = not numeric and words >= 3 and not majority
    kind: Kind = "free_text" if prose else "structured"
    if prose:
        for type_, share in _entity_shares(cells, region, RECOGNIZERS).items():
            shares[type_] = max(shares.get(type_, 0.0), share)
            if type_ not in sparse:
                sparse.append(type_)
    if not majority and not sparse and full_scan and not numeric and n > size:
        recs = RECOGNIZERS if prose else tuple(r for r in RECOGNIZERS if r.distinctive)
        for type_, share in _full_scan(text, region, recs, max_candidates).items():
            shares[type_] = share
            sparse.append(type_)

    found: tuple[PiiType, ...] = tuple(majority) + tuple(s for s in sparse if s not in majority)
    if majority:
        primary: PiiType | None = majority[0]
    else:
        primary = PiiType.FREE_TEXT if sparse else None
    if fractional and primary is None:
        kind = "not_text"  # a measurement: its whole values are no identifier
    return ColumnClassification(name, kind, primary, found, shares, size)


def _entity_shares(cells: pa.Array, region: str, recs: Sequence[Recognizer]) -> dict[PiiType, float]:
    """Share of cells holding at least one detected entity of each type."""
    recs = tuple(r for r in recs if r.type in TEXT_TYPES)
    counts: dict[PiiType, int] = {}
    for findings in scan_text(cells, default_region=region, types={r.type for r in recs}):
        for type_ in {f.type for f in findings}:
            counts[type_] = counts.get(type_, 0) + 1
    return {k: c / max(1, len(cells)) for k, c in counts.items()}


def _full_scan(text: pa.Array | pa.ChunkedArray, region: str, recs: Sequence[Recognizer],
               max_candidates: int) -> dict[PiiType, float]:
    """Approximate share of all cells holding each type, looking at every cell through the
    prefilter and at up to `max_candidates` distinct candidates through the validators."""
    total = len(text)
    candidates = []
    for chunk in _chunks(text):
        distinct, cell_index, valid = _distinct_cells(chunk)
        mask = _prefilter(distinct, recs)[cell_index] & valid
        if mask.any():
            candidates.append(chunk.filter(pa.array(mask)))
    if not candidates:
        return {}
    cand = pa.chunked_array(candidates, type=text.type).combine_chunks()
    enc = pc.dictionary_encode(cand)
    distinct = enc.dictionary
    weight = np.bincount(enc.indices.to_numpy(), minlength=len(distinct)).astype(np.float64)
    if len(distinct) > max_candidates:
        pick = np.linspace(0, len(distinct) - 1, max_candidates).round().astype(np.int64)
        scale = weight.sum() / weight[pick].sum()
        distinct, weight = distinct.take(pa.array(pick)), weight[pick] * scale
    found = _Finder(recs, region, DETECTION_THRESHOLD).find(distinct)
    counts: dict[PiiType, float] = {}
    for w, findings in zip(weight.tolist(), found):
        for type_ in {f.type for f in findings}:
            counts[type_] = counts.get(type_, 0.0) + w
    return {k: c / total for k, c in counts.items()}

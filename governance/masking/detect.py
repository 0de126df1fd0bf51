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
from cryptography.hazmat.primitives import hashes, hmac

from governance.errors import InvalidArgument
from governance.masking.entities import TEXT_TYPES, Finding, PiiType, type_token
from governance.masking.patterns import (
    ADDRESS_NUMBER_PATTERN,
    ADDRESS_PREFIX_PATTERN,
    ADDRESS_SHAPE_PATTERN,
    ADDRESS_STREET_PATTERN,
    CONTEXT_BOOST,
    DATE_FORMATS,
    DETECTION_THRESHOLD,
    PERSON_NAME_PATTERN,
    POSTAL_CODE_PATTERN,
    RECOGNIZERS,
    Recognizer,
    boosted,
    column_hints,
)

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

    def find(self, texts: pa.Array) -> list[list[Finding]]:
        n = len(texts)
        out: list[list[Finding]] = [[] for _ in range(n)]
        self._memo.clear()  # bounded by one batch of distinct strings
        if n == 0 or not self.recs:
            return out
        masks = np.stack([
            pc.match_substring_regex(texts, r.pattern).to_numpy(zero_copy_only=False) for r in self.recs
        ])
        cells, which = np.nonzero(masks.T)
        py = texts.to_pylist()
        per_cell: dict[int, list[Recognizer]] = {}
        for cell, rec in zip(cells.tolist(), which.tolist()):
            per_cell.setdefault(cell, []).append(self.recs[rec])
        for cell, recs in per_cell.items():
            out[cell] = self._find_one(py[cell], recs)
        return out

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
            result = rec.refine(matched, self.region)
        else:
            score = rec.validate(matched, self.region)
            result = None if score is None else (0, len(matched), score)
        self._memo[key] = result
        return result


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
    if pii_type in (PiiType.EMAIL, PiiType.URL, PiiType.MAC_ADDRESS):
        return value.strip().lower().replace("-", ":") if pii_type is PiiType.MAC_ADDRESS else value.strip().lower()
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
    out = []
    for chunk in _chunks(text):
        # Order matters as in _resolve_overlaps: a URL may contain an address-like part.
        for rec in sorted(vectorised, key=lambda r: _FIRST.index(r.type) if r.type in _FIRST else 99):
            chunk = pc.replace_substring_regex(chunk, rec.pattern, type_token(rec.type))
        mask = _prefilter(chunk, in_python)
        if mask.any():
            idx = pa.array(np.flatnonzero(mask))
            enc = pc.dictionary_encode(chunk.take(idx))
            distinct = enc.dictionary
            found = finder.find(distinct)
            replaced = pa.array(
                [_substitute(t, f, pseudonyms) if f else t for t, f in zip(distinct.to_pylist(), found)],
                type=chunk.type,
            )
            chunk = pc.replace_with_mask(chunk, pa.array(mask), replaced.take(enc.indices))
        out.append(chunk)
    if isinstance(values, pa.ChunkedArray):
        return pa.chunked_array(out, type=text.type)
    return out[0]


# --- classify_column -------------------------------------------------------------------

@dataclass(frozen=True)
class ColumnClassification:
    """What a column holds.

    `kind`: `structured` (short values), `free_text` (prose), `empty` (no non-null
    cells), `not_text` (numbers, booleans, non-birth dates: nothing to detect), or
    `opaque` (binary or nested values the detectors cannot read: a profile must name it).
    `pii_type`: the type most cells are (`FREE_TEXT` when the entities sit inside text
    or are too sparse to be the column's type), None when no PII was found.
    `found`: every type detected, primary first. `shares`: per type, the share of
    sampled non-null cells that validated (with a full scan, of all cells). `sampled`:
    how many non-null cells were looked at."""

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


def _structured_shares(sample: pa.Array, region: str, hints: Mapping[PiiType, float]) -> dict[PiiType, np.ndarray]:
    """Per type, which sampled cells are wholly (after trimming) a valid entity."""
    hits: dict[PiiType, np.ndarray] = {}
    for rec in RECOGNIZERS:
        if rec.type is PiiType.DATE:
            continue
        matched = pc.match_substring_regex(sample, f"^(?:{rec.pattern})$").fill_null(False)
        idx = np.flatnonzero(matched.to_numpy(zero_copy_only=False))
        if not idx.size:
            continue
        enc = pc.dictionary_encode(sample.take(pa.array(idx)))
        boost = hints.get(rec.type, 0.0)
        ok = np.array([
            (s := rec.validate(t, region)) is not None and boosted(s, boost) >= DETECTION_THRESHOLD
            for t in enc.dictionary.to_pylist()
        ], dtype=bool)
        cell_ok = np.zeros(len(sample), dtype=bool)
        cell_ok[idx] = ok[enc.indices.to_numpy()]
        hits[rec.type] = hits[rec.type] | cell_ok if rec.type in hits else cell_ok
    return hits


def classify_column(name: str, values: pa.Array | pa.ChunkedArray, *, sample: int = DEFAULT_SAMPLE,
                    default_region: str = "US", min_share: float = DEFAULT_MIN_SHARE,
                    full_scan: bool = False, max_candidates: int = 20_000) -> ColumnClassification:
    """Classify a column by what an even sample of `sample` non-null cells holds.

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
    non_null = values.drop_null()
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
    text = _text_view(non_null)
    if text is None:
        return ColumnClassification(name, "not_text", None, sampled=min(n, sample))

    raw = _even_sample(text, sample)
    cells = pc.utf8_trim_whitespace(raw)
    size = len(cells)
    hit = _structured_shares(cells, region, hints)
    shares = {k: float(v.mean()) for k, v in hit.items() if v.any()}
    if PiiType.POSTAL_CODE in hints:
        shares[PiiType.POSTAL_CODE] = pc.mean(pc.match_substring_regex(cells, POSTAL_CODE_PATTERN).cast(pa.float64())).as_py()
    if PiiType.PERSON_NAME in hints:
        shares[PiiType.PERSON_NAME] = pc.mean(pc.match_substring_regex(cells, PERSON_NAME_PATTERN).cast(pa.float64())).as_py()
    if PiiType.DATE_OF_BIRTH in hints:
        shares[PiiType.DATE_OF_BIRTH] = _dob_share(cells)
    if PiiType.ADDRESS in hints:
        shares[PiiType.ADDRESS] = _address_share(cells)
    shares = {k: v for k, v in shares.items() if v > 0}

    distinctive = {r.type for r in RECOGNIZERS if r.distinctive}
    majority = sorted((k for k, v in shares.items() if v >= min_share), key=lambda k: -shares[k])
    sparse = [k for k, v in shares.items() if k in distinctive and 0 < v < min_share]

    words = pc.mean(pc.add(pc.count_substring_regex(cells, r"\s+"), 1).cast(pa.float64())).as_py() or 0.0
    prose = not pa.types.is_integer(t) and words >= 3 and not majority
    kind: Kind = "free_text" if prose else "structured"
    if prose:
        for type_, share in _entity_shares(cells, region, RECOGNIZERS).items():
            shares[type_] = max(shares.get(type_, 0.0), share)
            if type_ not in sparse:
                sparse.append(type_)
    if not majority and not sparse and full_scan and not pa.types.is_integer(t) and n > size:
        recs = RECOGNIZERS if prose else tuple(r for r in RECOGNIZERS if r.distinctive)
        for type_, share in _full_scan(text, region, recs, max_candidates).items():
            shares[type_] = share
            sparse.append(type_)

    found: tuple[PiiType, ...] = tuple(majority) + tuple(s for s in sparse if s not in majority)
    if majority:
        primary: PiiType | None = majority[0]
    else:
        primary = PiiType.FREE_TEXT if sparse else None
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
        mask = _prefilter(chunk, recs)
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

"""Classify a column by what its cells hold: structured identifiers (most sampled cells
validate as one type), free text with entities inside, or nothing to detect.

The rules: an even sample of the cells that hold a value (an empty CSV cell is no
evidence), the share of them that validate as each type, the column's name as context,
`min_share` for a type to be the column's, and types whose shape alone is evidence counted
at any share. The sample's regex passes and the per-distinct-value validation are the
cost-shaped part (see `detect`).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from privet.governance.errors import InvalidArgument
from privet.governance.masking._batch_finder import BatchFinder
from privet.governance.masking._column_regex import prefilter
from privet.governance.masking._columns import Column, chunks, distinct_cells, text_view
from privet.governance.masking.column_names import name_tokens, names_a_thing
from privet.governance.masking.column_patterns import (
    ADDRESS_NUMBER_PATTERN,
    ADDRESS_PREFIX_PATTERN,
    ADDRESS_SHAPE_PATTERN,
    ADDRESS_STREET_PATTERN,
    DATE_FORMATS,
    PERSON_NAME_PATTERN,
    POSTAL_CODE_PATTERN,
)
from privet.governance.masking.entities import TEXT_TYPES, PiiType
from privet.governance.masking.free_text import NER_GATE, scan_text
from privet.governance.masking.names_and_places import NER_TYPES, names_and_places
from privet.governance.masking.patterns import (
    CONTEXT_BOOST,
    DETECTION_THRESHOLD,
    GENERIC_ID_BOOST,
    RECOGNIZERS,
    Recognizer,
    boosted,
    column_hints,
)
from privet.governance.masking.plain_forms import plain_forms
from privet.governance.masking.strings import whole_numbers_as_digits

__all__ = ["DEFAULT_MIN_SHARE", "DEFAULT_SAMPLE", "ColumnClassification", "Kind", "classify_column"]

DEFAULT_SAMPLE = 1000
# A structured column is of a type when at least this share of its sampled cells validate.
DEFAULT_MIN_SHARE = 0.5
# A type without a distinctive shape (a bare number that passes a checksum) counts in a
# minority of a column's cells when at least this share of the cells shaped like it
# validate: chance passes a checksum one time in ten (Luhn, Verhoeff, mod 11) or fewer,
# so an order-number column's 10 % of Luhn-valid numbers is noise, while the few cards
# pasted into a product-code column are nearly all valid.
CREDIBLE_SHARE = 0.5
# Cells of a short-text column the names-and-places model reads (it costs ~10 ms a cell),
# and how much of a cell's letters its finding must cover for the cell to be a name.
NER_SAMPLE = 64
# In prose, a type the model finds counts from this many sampled cells: its misreadings are
# rare but not absent, and a pattern's validated match has no counterpart.
MIN_NAMED_CELLS = 2
MIN_NAMED_SHARE = 0.02
NAMED_COVER = 0.6
# How CSV files spell a missing value ("", "N/A", "null": pyarrow's defaults, which ingestion
# reads with). A numeric column reads them as null; a string column keeps them as text.
_MISSING = pa.array(pacsv.ConvertOptions().null_values, pa.string())

Kind = Literal["structured", "free_text", "empty", "not_text", "opaque"]


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
    `sampled`: how many cells holding a value were looked at.
    `context`: the score boost the column lends each type in its cells when they are
    scanned (its name's, and for a column of short values the types its verdict found),
    as a keyword next to a value lends it in prose."""

    name: str
    kind: Kind
    pii_type: PiiType | None
    found: tuple[PiiType, ...] = ()
    shares: Mapping[PiiType, float] = field(default_factory=dict)
    sampled: int = 0
    context: Mapping[PiiType, float] = field(default_factory=dict)

    @property
    def is_pii(self) -> bool:
        return self.pii_type is not None


def _even_sample(values: Column, size: int) -> pa.Array:
    n = len(values)
    if n > size:
        values = values.take(pa.array(np.linspace(0, n - 1, size).round().astype(np.int64)))
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values


def _values_only(values: Column) -> Column:
    """The cells not null and, in a float column, not NaN (how pandas and numpy spell a
    missing number)."""
    values = values.drop_null()
    if pa.types.is_floating(values.type):
        values = values.filter(pc.invert(pc.is_nan(values)))
    return values


def _filled(text: Column) -> Column:
    """The text cells that hold a value: not blank, not a missing-value marker. In a CSV an
    empty cell is an empty string, not a null; counted, the blanks of a sparsely filled
    SSN or phone column would outvote the identifiers in the rest."""
    trimmed = pc.utf8_trim_whitespace(text)
    return text.filter(pc.invert(pc.is_in(trimmed, value_set=_MISSING.cast(trimmed.type))))


def _identifier_text(values: Column) -> Column | None:
    """`text_view`, and for floats and decimals their whole numbers as integer text
    (536221234.0 -> "536221234"): pandas stores an integer column with a missing value as
    float64, so an SSN or phone number may arrive as one. Fractions and infinities are
    null: no identifier is one."""
    if pa.types.is_floating(values.type) or pa.types.is_decimal(values.type):
        return whole_numbers_as_digits(values)
    return text_view(values)


def _share(matched: pa.Array) -> float:
    """Share of cells matched; a null cell (a fraction in a number column) is not."""
    share: float = pc.mean(matched.fill_null(False).cast(pa.float64())).as_py()
    return share


def _dob_share(values: pa.Array) -> float:
    """Share of cells that are a date a living person could be born on."""
    if pa.types.is_date(values.type) or pa.types.is_timestamp(values.type):
        dates = values
    else:
        parsed = [pc.strptime(values, format=f, unit="s", error_is_null=True) for f in DATE_FORMATS]
        dates = pc.coalesce(*parsed)
    years = pc.year(dates)
    ok = pc.and_(pc.greater_equal(years, 1900), pc.less_equal(years, _dt.date.today().year))
    born: int = pc.sum(ok.fill_null(False).cast(pa.int64())).as_py()
    return born / max(1, len(values))


def _address_share(cells: pa.Array) -> float:
    """Share of cells shaped like a street address: short address-like text that begins
    with a Romance street type, or holds a house number and a street type (see
    column_patterns.ADDRESS_*). Four RE2 passes over the sample, no Python per cell."""
    def match(pattern: str) -> pa.BooleanArray:
        return pc.match_substring_regex(cells, pattern).fill_null(False)

    numbered = pc.and_(match(ADDRESS_NUMBER_PATTERN), match(ADDRESS_STREET_PATTERN))
    ok = pc.and_(match(ADDRESS_SHAPE_PATTERN), pc.or_(match(ADDRESS_PREFIX_PATTERN), numbered))
    shaped: int = pc.sum(ok.cast(pa.int64())).as_py()
    return shaped / max(1, len(cells))


def _structured_shares(sample: pa.Array, region: str, hints: Mapping[PiiType, float],
                       recognizers: Sequence[Recognizer] = RECOGNIZERS) -> dict[PiiType, tuple[npt.NDArray[np.bool_], int]]:
    """Per type, which sampled cells are wholly (after trimming) a valid entity, and how
    many cells are shaped like one (match its pattern whole, valid or not)."""
    hits: dict[PiiType, tuple[npt.NDArray[np.bool_], int]] = {}
    distinct, cell_index, valid = distinct_cells(sample)
    for rec in recognizers:
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
            for s in rec.validate_all(distinct.take(pa.array(idx)).to_pylist(), region)
        ]
        shaped_cells = np.zeros(len(distinct), dtype=bool)
        shaped_cells[idx] = True
        cell_ok = ok[cell_index] & valid
        shaped = int((shaped_cells[cell_index] & valid).sum())
        if rec.type in hits:
            before, before_shaped = hits[rec.type]
            cell_ok, shaped = before | cell_ok, before_shaped + shaped
        hits[rec.type] = (cell_ok, shaped)
    return hits


def _credible(ok: npt.NDArray[np.bool_], shaped: int) -> bool:
    """Whether the cells that validate are more than what chance passes among the cells
    shaped like the type (see CREDIBLE_SHARE)."""
    valid = int(ok.sum())
    return valid > 0 and valid >= CREDIBLE_SHARE * shaped


def _mixed_national_ids(cells: pa.Array, region: str, hints: Mapping[PiiType, float],
                        min_share: float) -> dict[PiiType, float]:
    """A column of national identifiers of several countries (no one of them the
    majority): each id type's share when the column is read as "some national id", as a
    column named `national_id` is; empty unless the ids with a checksum are together
    `min_share` of the cells (a random 9-digit invoice number passes as an SSN, which has
    none, nine times in ten: SSNs count only in a column the checksummed ids made one)."""
    recs = [r for r in RECOGNIZERS if r.national_id]
    boosts = {r.type: max(hints.get(r.type, 0.0), GENERIC_ID_BOOST) for r in recs}
    hit = _structured_shares(cells, region, boosts, recs)
    union = np.zeros(len(cells), dtype=bool)
    for type_, (ok, _shaped) in hit.items():
        if type_ not in _NO_CHECKSUM:
            union |= ok
    if not hit or union.mean() < min_share:
        return {}
    return {k: float(ok.mean()) for k, (ok, _shaped) in hit.items() if ok.any()}


# National identifiers validated by their shape and ranges alone.
_NO_CHECKSUM = frozenset((PiiType.US_SSN,))


def classify_column(name: str, values: Column, *, sample: int = DEFAULT_SAMPLE,
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
    cells = pc.utf8_trim_whitespace(plain_forms(raw) if not numeric else raw)
    size = len(cells)
    hit = _structured_shares(cells, region, hints)
    shares = {k: float(ok.mean()) for k, (ok, _shaped) in hit.items() if ok.any()}
    credible = {k for k, (ok, shaped) in hit.items() if _credible(ok, shaped)}
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
    # A minority of cells holding identifiers is PII whatever the rest holds (cards pasted
    # into a product-code column): a distinctive shape is evidence at any share, a checksum
    # only when it passes far more often than chance would (`_credible`).
    sparse = [k for k, v in shares.items() if 0 < v < min_share and (k in distinctive or k in credible)]
    lent = dict(hints)
    if not majority and not numeric:
        mixed = _mixed_national_ids(cells, region, hints, min_share)
        for type_, share in mixed.items():
            shares[type_] = max(shares.get(type_, 0.0), share)
            lent[type_] = max(lent.get(type_, 0.0), GENERIC_ID_BOOST)
            if type_ not in sparse:
                sparse.append(type_)

    words = pc.mean(pc.add(pc.count_substring_regex(cells, r"\s+"), 1).cast(pa.float64())).as_py() or 0.0
    prose = not numeric and words >= 3 and not majority
    kind: Kind = "free_text" if prose else "structured"
    if not prose and not numeric and not majority:
        # Short text no pattern explains: a column of names or addresses under a header
        # that says nothing (`customer`, `contact`, `ship_to`)?
        for type_, share in _named_shares(cells, names_a_thing(name_tokens(name))).items():
            if share >= min_share:  # a column of them; a few cells the model misread are none
                shares[type_] = max(shares.get(type_, 0.0), share)
        if PiiType.ADDRESS not in shares:  # short addresses the patterns know (大冶路Q座 948851)
            _, whole_addresses = _entity_shares(_even_sample(cells, NER_SAMPLE), region, RECOGNIZERS)
            if whole_addresses >= min_share:
                shares[PiiType.ADDRESS] = whole_addresses
        majority = sorted((k for k, v in shares.items() if v >= min_share), key=lambda k: -shares[k])
    if prose:
        found_shares, whole_addresses = _entity_shares(cells, region, RECOGNIZERS)
        if whole_addresses >= min_share:
            # A column of addresses (`location`, `x`), not prose that mentions them: masked
            # whole by the ADDRESS rule, the postcode and city beside the street included.
            prose, kind = False, "structured"
            shares[PiiType.ADDRESS] = whole_addresses
            majority = [PiiType.ADDRESS]
            found_shares = {}
        for type_, share in found_shares.items():
            if type_ in NER_TYPES and (share * size < MIN_NAMED_CELLS or share < MIN_NAMED_SHARE):
                continue  # a few cells the model misread are no evidence
            if type_ is PiiType.PERSON_NAME and names_a_thing(name_tokens(name)):
                continue  # "Smith, Jones and Lee" in a `company` column names a firm
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
    if kind == "structured":
        # Short values: what the column's verdict found is context for each cell, as a
        # keyword would be in prose (a bare checksummed id in an id column is an id).
        for type_ in found:
            if type_ is not PiiType.FREE_TEXT:
                lent[type_] = max(lent.get(type_, 0.0), CONTEXT_BOOST)
    return ColumnClassification(name, kind, primary, found, shares, size, lent)


def _named_shares(cells: pa.Array, of_things: bool) -> dict[PiiType, float]:
    """Share of an even sample of at most NER_SAMPLE cells that the names-and-places model
    reads as wholly (NAMED_COVER of their letters) a person's name or a street address.
    Only cells the model's gate lets through are read; the rest count as not named. A
    column whose name says it holds things (`of_things`) is not read for people."""
    sample = _even_sample(cells, NER_SAMPLE)
    gated = np.flatnonzero(pc.match_substring_regex(sample, NER_GATE).fill_null(False).to_numpy(zero_copy_only=False))
    if not gated.size:
        return {}
    texts = sample.take(pa.array(gated)).to_pylist()
    counts: dict[PiiType, int] = {}
    types = (PiiType.ADDRESS,) if of_things else (PiiType.PERSON_NAME, PiiType.ADDRESS)
    for text, found in zip(texts, names_and_places().find(texts, types)):
        letters = sum(1 for ch in text if ch.isalnum())
        for type_ in types:
            covered = sum(1 for f in found if f.type is type_ for ch in text[f.start:f.end] if ch.isalnum())
            if letters and covered >= NAMED_COVER * letters:
                counts[type_] = counts.get(type_, 0) + 1
    return {k: c / len(sample) for k, c in counts.items()}


def _entity_shares(cells: pa.Array, region: str, recs: Sequence[Recognizer]) -> tuple[dict[PiiType, float], float]:
    """Share of cells holding at least one detected entity of each type (the patterns' and
    the names-and-places model's), and the share of cells that are wholly a street address
    (its findings cover NAMED_COVER of the cell's letters and digits)."""
    types = {r.type for r in recs if r.type in TEXT_TYPES} | set(NER_TYPES)
    counts: dict[PiiType, int] = {}
    addresses = 0
    texts = cells.to_pylist()
    for text, findings in zip(texts, scan_text(cells, default_region=region, types=types)):
        for type_ in {f.type for f in findings}:
            counts[type_] = counts.get(type_, 0) + 1
        if text and any(f.type is PiiType.ADDRESS for f in findings):
            letters = sum(1 for ch in text if ch.isalnum())
            covered = sum(1 for f in findings if f.type in _PLACE_TYPES for ch in text[f.start:f.end] if ch.isalnum())
            addresses += letters > 0 and covered >= NAMED_COVER * letters
    return {k: c / max(1, len(cells)) for k, c in counts.items()}, addresses / max(1, len(cells))


# What a cell that is an address is made of.
_PLACE_TYPES = frozenset((PiiType.ADDRESS, PiiType.LOCATION, PiiType.POSTAL_CODE))


def _full_scan(text: Column, region: str, recs: Sequence[Recognizer],
               max_candidates: int) -> dict[PiiType, float]:
    """Approximate share of all cells holding each type, looking at every cell through the
    prefilter and at up to `max_candidates` distinct candidates through the validators."""
    total = len(text)
    candidates = []
    for chunk in chunks(text):
        distinct, cell_index, valid = distinct_cells(chunk)
        mask = prefilter(distinct, recs)[cell_index] & valid
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
    found = BatchFinder(recs, region, DETECTION_THRESHOLD).find(distinct)
    counts: dict[PiiType, float] = {}
    for w, findings in zip(weight.tolist(), found):
        for type_ in {f.type for f in findings}:
            counts[type_] = counts.get(type_, 0.0) + w
    return {k: c / total for k, c in counts.items()}

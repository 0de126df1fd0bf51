"""Column-at-a-time versions of the two slow validators: phone numbers and IBANs.

`validators.validate_phone` (phonenumbers) and `validators.validate_iban` (python-stdnum)
cost 20–50 µs a string, which caps a free-text scan near 25,000 candidates a second. The
functions here give the *same* scores for a whole array at once, running the libraries'
own data — phonenumbers' per-region metadata patterns, stdnum's IBAN registry — as RE2
regexes over the column and the mod-97 check as numpy arithmetic.

They decide only the cases whose rules they follow exactly and return NaN for the rest
(numbers in regions with unusual trunk-prefix rules, an IDD written out, IBANs of the
countries stdnum checks further), which the caller hands to the Python validator. A
decided score is what the Python validator returns (`REJECTED` standing for None);
`tests/unit/masking/test_masking_vectorised.py` holds them to that over many locales.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import PhoneMetadata, PhoneNumberDesc
from stdnum import numdb

from privet.governance.masking import validators as v
from privet.governance.masking.strings import byte_set, count_bytes, digits_only, drop_bytes, only_bytes

__all__ = ["REJECTED", "UNDECIDED", "iban_scores", "phone_scores"]

REJECTED = -1.0  # the validator's None: not this type at all
UNDECIDED = np.nan  # ask the Python validator

_Bools = npt.NDArray[np.bool_]
_Scores = npt.NDArray[np.float64]  # a score per text, REJECTED or UNDECIDED
_Lengths = npt.NDArray[np.integer[Any]]
_Rows = npt.NDArray[np.intp]  # positions, as np.flatnonzero gives them

_EXTENSION = r"(?i)\s*(?:x|ext\.?|#)\s*[0-9]{1,6}$"
_SEPARATORS = byte_set(" -./")
_DASH_OR_SPACE = byte_set(" -")
_PRINTABLE = byte_set("".join(map(chr, range(0x20, 0x7F))))
_IBAN_SEPARATORS = byte_set("\t\n\f\r -.")  # stdnum's compact; RE2's \s is [\t\n\f\r ]


def _regex_ok(pattern: str) -> bool:
    try:
        pc.match_substring_regex(pa.array([""]), pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _full(values: pa.Array, pattern: str) -> _Bools:
    matched: _Bools = pc.match_substring_regex(values, f"^(?:{pattern})$").to_numpy(zero_copy_only=False)
    return matched


def _starts(values: pa.Array, pattern: str) -> _Bools:
    matched: _Bools = pc.match_substring_regex(values, f"^(?:{pattern})").to_numpy(zero_copy_only=False)
    return matched


# --- phone numbers ------------------------------------------------------------------------

@dataclass(frozen=True)
class _Desc:
    pattern: str
    lengths: tuple[int, ...]


@dataclass(frozen=True)
class _Region:
    """What parsing and validating a number of one region needs from its metadata, or None
    where that region's rules go beyond what is mirrored here."""

    code: str
    general: _Desc
    # Premium, toll free, …, fixed line, mobile: the type patterns as one alternation per
    # set of possible lengths, so a test costs a regex pass or two, not ten.
    types: tuple[_Desc, ...]
    leading_digits: str | None
    trunk_prefix: str  # the national prefix for parsing, a regex; "" for none
    # A prefix with a transform rule (Caribbean area codes, BR, JP) rewrites the number as
    # it strips it: numbers parsed with such a region are left to phonenumbers.
    parsable: bool
    possible: tuple[int, ...]  # general possible lengths
    local_only: tuple[int, ...]
    idd: str | None


def _desc(desc: PhoneNumberDesc | None) -> _Desc | None:
    if desc is None or not desc.national_number_pattern:
        return None
    return _Desc(desc.national_number_pattern, tuple(desc.possible_length or ()))


@functools.lru_cache(maxsize=512)
def _region(code: str) -> _Region | None:
    meta = PhoneMetadata.metadata_for_region(code, None)
    if meta is None or meta.general_desc is None:
        return None
    general = _desc(meta.general_desc)
    prefix = meta.national_prefix_for_parsing or ""
    if general is None or not meta.general_desc.possible_length:
        return None
    by_lengths: dict[tuple[int, ...], list[str]] = {}
    for name in ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
                 "voicemail", "fixed_line", "mobile"):
        d = _desc(getattr(meta, name))
        if d is not None:
            by_lengths.setdefault(d.lengths, []).append(d.pattern)
    types = tuple(_Desc("|".join(f"(?:{p})" for p in ps), lengths) for lengths, ps in by_lengths.items())
    patterns = [general.pattern, *(d.pattern for d in types), meta.leading_digits or "", meta.international_prefix or "",
                prefix]
    if not all(_regex_ok(p) for p in patterns if p):
        return None
    return _Region(code, general, types, meta.leading_digits, prefix, not meta.national_prefix_transform_rule,
                   tuple(meta.general_desc.possible_length or ()),
                   tuple(meta.general_desc.possible_length_local_only or ()),
                   meta.international_prefix)


def _length_in(lengths: _Lengths, allowed: tuple[int, ...]) -> _Bools:
    """np.isin for small non-negative ints, by table lookup (isin's setup dominates here)."""
    table = np.zeros(max(allowed, default=0) + 2, dtype=bool)
    table[list(allowed)] = True
    return table[np.minimum(lengths, len(table) - 1)]


def _matches(nsn: pa.Array, lengths: _Lengths, desc: _Desc) -> _Bools:
    ok = _full(nsn, desc.pattern)
    return ok & _length_in(lengths, desc.lengths) if desc.lengths else ok


def _has_type(nsn: pa.Array, lengths: _Lengths, region: _Region) -> _Bools:
    """phonenumbers' number type is not UNKNOWN for `region`."""
    any_type = np.zeros(len(nsn), dtype=bool)
    for desc in region.types:
        any_type |= _matches(nsn, lengths, desc)
    return any_type & _matches(nsn, lengths, region.general)


@functools.lru_cache(maxsize=64)
def _any_type_pattern(cc: int) -> str | None:
    """One alternation of every type pattern of every region of country code `cc`, or None
    when RE2 does not take it."""
    regions = [_region(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(cc, ())]
    pattern = "|".join(f"(?:{d.pattern})" for r in regions if r is not None for d in r.types)
    return pattern if pattern and _regex_ok(f"^(?:{pattern})$") else None


def _is_valid(nsn: pa.Array, cc: int) -> _Bools | None:
    """phonenumbers.is_valid_number for national significant numbers of country code `cc`:
    the number's region is the first of the code's regions whose leading digits match or
    for which it has a type, and it is valid when it has a type there. None: a region of
    the code is beyond this module."""
    codes = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(cc, ())
    found = [_region(code) for code in codes]
    regions = [r for r in found if r is not None]
    if not regions or len(regions) < len(found):
        return None
    lengths: _Lengths = pc.utf8_length(nsn).to_numpy(zero_copy_only=False)
    if len(regions) == 1:  # the code's only region: no leading-digit test
        return _has_type(nsn, lengths, regions[0])
    valid = np.zeros(len(nsn), dtype=bool)
    # A number no region of the code has a type for is valid in none: one pass of all their
    # type patterns spares the regions after the first their passes over such numbers.
    anywhere = _any_type_pattern(cc)
    open_ = _full(nsn, anywhere) if anywhere else np.ones(len(nsn), dtype=bool)
    for region in regions:
        idx = np.flatnonzero(open_)
        if not idx.size:
            break
        sub = nsn.take(pa.array(idx))
        if region.leading_digits is not None:
            claimed = idx[_starts(sub, region.leading_digits)]
            valid[claimed] = _has_type(nsn.take(pa.array(claimed)), lengths[claimed], region)
        else:
            typed = _has_type(sub, lengths[idx], region)
            claimed = idx[typed]
            valid[claimed] = True
        open_[claimed] = False
    return valid


def _length_verdict(lengths: _Lengths, region: _Region) -> tuple[_Bools, _Bools]:
    """(possible, rejected-for-parsing) from phonenumbers' length test against the general
    description: possible = IS_POSSIBLE or IS_POSSIBLE_LOCAL_ONLY; the second is TOO_SHORT,
    IS_POSSIBLE_LOCAL_ONLY or INVALID_LENGTH, the results after which parsing keeps a
    trunk prefix it would otherwise strip."""
    possible = _length_in(lengths, region.possible)
    local = _length_in(lengths, region.local_only)
    too_long = lengths > max(region.possible)
    return possible | local, ~possible & ~too_long | local


def _strip_trunk_prefix(nsn: pa.Array, region: _Region, length_test: bool = True) -> pa.Array:
    """parse's national-prefix step (RE2 and Python's re agree on leftmost-first
    alternation, so the same prefix is found): strip it unless the number was viable with it
    and is not without it, or (`length_test`) what is left has an impossible length."""
    if not region.trunk_prefix:
        return nsn
    has = _starts(nsn, region.trunk_prefix)
    if not has.any():
        return nsn
    stripped = pc.replace_substring_regex(nsn, f"^(?:{region.trunk_prefix})", "", max_replacements=1)
    use = has & ~(_full(nsn, region.general.pattern) & ~_full(stripped, region.general.pattern))
    if length_test:
        _, bad_length = _length_verdict(pc.utf8_length(stripped).to_numpy(zero_copy_only=False), region)
        use &= ~bad_length
    return pc.if_else(pa.array(use), stripped, nsn)


def phone_scores(texts: list[str] | pa.Array, region: str) -> _Scores:
    """`validators.validate_phone(t, region)` for every t, or NaN where undecided: with
    several regions, and for a formatted domestic number its home region scores below
    `ELSEWHERE` (the other regions' plans are Python's to try)."""
    arr = pa.array(texts, type=pa.string()) if not isinstance(texts, pa.Array) else texts
    regions = v.regions_of(region)
    if len(regions) > 1:
        return np.full(len(arr), UNDECIDED)
    out = _home_phone_scores(arr, regions[0])
    decided = ~np.isnan(out) & (out >= 0)
    trunk = pc.match_substring_regex(arr, r"^[\s(]*0").to_numpy(zero_copy_only=False)
    low = decided & (out < v.ELSEWHERE) & (trunk | (out <= 0.2))
    body = pc.utf8_trim_whitespace(pc.replace_substring_regex(arr, _EXTENSION, ""))
    if low.any():
        formatted = pc.match_substring_regex(body, r"\(|[ .\-/].*[ .\-/]|^0.*[ .\-/]").to_numpy(zero_copy_only=False)
        international = pc.match_substring_regex(body, r"^\s*(?:\+|0\s*0)").to_numpy(zero_copy_only=False)
        out[low & formatted & ~international] = UNDECIDED
    version = pc.match_substring_regex(body, r"^[0-9]+(?:\.[0-9]+){2,}$").to_numpy(zero_copy_only=False)
    out[version] = UNDECIDED
    return out


def _home_phone_scores(arr: pa.Array, region: str) -> _Scores:
    n = len(arr)
    out = np.full(n, UNDECIDED)
    home = _region(region.upper())
    if n == 0 or home is None:
        return out
    # Decided: printable ASCII in the phone pattern's alphabet (what the recognizer feeds).
    body = pc.utf8_trim_whitespace(pc.replace_substring_regex(arr, _EXTENSION, ""))
    ascii_ = only_bytes(arr, _PRINTABLE) & _full(body, r"\+?[0-9 ().\-/]*")
    digits = digits_only(body)
    ndig = pc.utf8_length(digits).to_numpy(zero_copy_only=False)
    plus = pc.starts_with(body, "+").to_numpy(zero_copy_only=False)
    shape = pc.match_substring_regex(body, v.LOOKS_LIKE_DATE.pattern).to_numpy(zero_copy_only=False) | \
        pc.match_substring_regex(body, v.LOOKS_LIKE_AMOUNT.pattern).to_numpy(zero_copy_only=False)
    rejected = (ndig < 7) | (ndig > 15) | shape
    international = plus | pc.starts_with(digits, "00").to_numpy(zero_copy_only=False)
    wrong_length = ~international & ~_length_in(ndig, tuple(v.national_lengths(home.code)))
    separators = count_bytes(body, _SEPARATORS)
    dash_or_space = count_bytes(body, _DASH_OR_SPACE) > 0
    formatted = plus | pc.match_substring(body, "(").to_numpy(zero_copy_only=False) | (separators >= 2) | \
        ((separators == 1) & dash_or_space)

    out[ascii_ & rejected] = REJECTED
    out[ascii_ & ~rejected & wrong_length] = 0.2
    todo = ascii_ & ~rejected & ~wrong_length
    # Written without '+': read with the default region, unless an IDD starts it (left to
    # phonenumbers).
    meta = PhoneMetadata.metadata_for_region(home.code)
    assert meta is not None and meta.country_code is not None, "home was read from this region's metadata"
    cc = meta.country_code
    domestic = todo & ~plus & home.parsable
    if home.idd:
        domestic &= ~_starts(digits, home.idd)
    with_cc = domestic & pc.starts_with(digits, str(cc)).to_numpy(zero_copy_only=False)
    sel = np.flatnonzero(domestic & ~with_cc)
    _score_group(out, sel, digits.take(pa.array(sel)), home, cc, formatted)
    sel = np.flatnonzero(with_cc)
    if sel.size:
        # The country code without '+': taken off when the number is viable only without
        # it, or too long with it (phonenumbers' rule), then read as the code's number.
        full = digits.take(pa.array(sel))
        rest = _strip_trunk_prefix(pc.utf8_slice_codeunits(full, len(str(cc))), home, length_test=False)
        lengths = pc.utf8_length(full).to_numpy(zero_copy_only=False)
        too_long = (lengths > max(home.possible)) & ~_length_in(lengths, home.local_only)
        take = (~_full(full, home.general.pattern) & _full(rest, home.general.pattern)) | too_long
        main_code = phonenumbers.region_code_for_country_code(cc)
        as_code = home if main_code == home.code else _region(main_code)
        if as_code is not None:
            _score_group(out, sel[take], rest.filter(pa.array(take)), as_code, cc, formatted)
        _score_group(out, sel[~take], full.filter(pa.array(~take)), home, cc, formatted)
    # "+CC …": the code read off the front as phonenumbers does (1–3 digits, no leading 0).
    intl = np.flatnonzero(todo & plus)
    if intl.size:
        rest = digits.take(pa.array(intl))
        codes = np.zeros(intl.size, dtype=np.int64)
        for i, d in enumerate(rest.to_pylist()):
            for width in (1, 2, 3):
                if d[:1] != "0" and len(d) > 2 and int(d[:width] or 0) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                    codes[i] = int(d[:width])
                    break
        for code in np.unique(codes[codes > 0]).tolist():
            main = _region(phonenumbers.region_code_for_country_code(code))
            if main is None:
                continue
            sel = intl[codes == code]
            _score_group(out, sel, pc.utf8_slice_codeunits(digits.take(pa.array(sel)), len(str(code))),
                         main, code, formatted)
    return out


def _score_group(out: _Scores, idx: _Rows, digits: pa.Array, region: _Region, cc: int, formatted: _Bools) -> None:
    """Score the inputs at `idx`, whose digits (after any country code) are `digits`, as
    parse reads them with `region`'s metadata and country code `cc`."""
    main = _region(phonenumbers.region_code_for_country_code(cc))
    if not idx.size or main is None or not region.parsable:
        return
    nsn = _strip_trunk_prefix(digits, region)
    lengths = pc.utf8_length(nsn).to_numpy(zero_copy_only=False)
    # phonenumbers keeps a leading zero as "Italian leading zero", which round-trips the
    # digits unchanged; a national number shorter than 2 digits fails to parse.
    valid = _is_valid(nsn, cc)
    if valid is None:
        return
    possible, _ = _length_verdict(lengths, main)  # is_possible_number: the code's main region
    fmt = formatted[idx]
    scores = np.where(valid, np.where(fmt, 0.8, 0.45), np.where(possible, np.where(fmt, 0.45, 0.3), 0.2))
    scores[lengths < 2] = 0.2
    out[idx] = scores


# --- IBAN -------------------------------------------------------------------------------

_IBAN_DB = numdb.get("iban")
# Countries whose IBANs stdnum checks further with a national module (their own check
# digits): left to the Python validator.
_NATIONAL_CHECKS = frozenset(("BE", "ES", "ME", "NO"))
_STRUCTURE_PART = re.compile(r"([1-9][0-9]*)!([nac])")
_CLASSES = {"n": "[0-9]", "a": "[A-Z]", "c": "[A-Za-z0-9]"}


@functools.cache
def _bban_pattern(country: str) -> str | None:
    """The BBAN regex of `country` from stdnum's IBAN registry, None when unknown."""
    props = _IBAN_DB.info(country)[0][1]
    structure = props.get("bban")
    if not structure:
        return None
    return "".join(f"{_CLASSES[kind]}{{{count}}}" for count, kind in _STRUCTURE_PART.findall(structure))


def _mod97_is_one(rearranged: npt.NDArray[np.uint8]) -> _Bools:
    """ISO 7064 mod 97-10 over rows of ASCII codes (0 = padding): letters count as 10..35."""
    r = np.zeros(rearranged.shape[0], dtype=np.int64)
    for col in rearranged.T:
        c = col.astype(np.int64)
        digit = (c >= 48) & (c <= 57)
        letter = (c >= 65) & (c <= 90)
        r = np.where(digit, (r * 10 + (c - 48)) % 97, r)
        r = np.where(letter, (r * 100 + (c - 55)) % 97, r)
    is_one: _Bools = r == 1
    return is_one


def iban_scores(texts: list[str] | pa.Array) -> _Scores:
    """`validators.validate_iban(t)` for every t, or NaN where undecided."""
    arr = pa.array(texts, type=pa.string()) if not isinstance(texts, pa.Array) else texts
    n = len(arr)
    out = np.full(n, UNDECIDED)
    if n == 0:
        return out
    ascii_ = only_bytes(arr, _PRINTABLE)  # decided: printable ASCII
    # stdnum's compact: separators ' -.' and surrounding whitespace go, upper case.
    compact = pc.utf8_upper(drop_bytes(arr, _IBAN_SEPARATORS))
    shaped = _full(compact, "[A-Z]{2}[0-9]{2}[A-Z0-9]{1,30}") & ascii_
    out[ascii_ & ~shaped] = REJECTED
    idx = np.flatnonzero(shaped)
    if not idx.size:
        return out
    sub = compact.take(pa.array(idx))
    rearranged = pc.binary_join_element_wise(pc.utf8_slice_codeunits(sub, 4), pc.utf8_slice_codeunits(sub, 0, 4), "")
    codes = np.frombuffer(np.array(rearranged.to_pylist(), dtype="S34").tobytes(), dtype=np.uint8).reshape(-1, 34)
    checksum = _mod97_is_one(codes)
    countries = pc.utf8_slice_codeunits(sub, 0, 2)
    bban = pc.utf8_slice_codeunits(sub, 4)
    verdict = np.where(checksum, 0.95, REJECTED)
    for country in pc.unique(countries).to_pylist():
        rows = pc.equal(countries, country).to_numpy(zero_copy_only=False)
        pattern = _bban_pattern(country)
        if pattern is None:
            verdict[rows] = REJECTED
            continue
        structured = _full(bban.filter(pa.array(rows)), pattern)
        verdict[np.flatnonzero(rows)[~structured]] = REJECTED
        if country in _NATIONAL_CHECKS:
            verdict[rows & (verdict > 0)] = UNDECIDED
    out[idx] = verdict
    return out

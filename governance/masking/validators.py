"""Python validators: given text a pattern matched, say how sure we are it is that entity.

Each validator takes the matched text (and, for phones, the default region) and returns a
base score in (0, 1], or None when the text is not that entity. Scores encode how much
the check alone proves: a mod-97 IBAN with the right national structure is near certain; a
9-digit number that passes the Dutch 11-proof is right one time in eleven by chance, so it
scores below the detection threshold until a column name or a nearby keyword supports it
(`patterns.CONTEXT_BOOST`). They run only on cells a pyarrow regex already matched.
"""

from __future__ import annotations

import datetime as _dt
import functools
import ipaddress
import re

import phonenumbers
from stdnum import iban as _iban
from stdnum import luhn as _luhn
from stdnum.cn import ric as _ric
from stdnum.de import idnr as _idnr
from stdnum.es import dni as _dni
from stdnum.es import nie as _nie
from stdnum.exceptions import ValidationError
from stdnum.fr import nir as _nir
from stdnum.in_ import aadhaar as _aadhaar
from stdnum.it import codicefiscale as _cf
from stdnum.nl import bsn as _bsn
from stdnum.us import ssn as _ssn

from privet.governance.masking.dates_in_words import read_date_in_words

__all__ = [
    "ELSEWHERE",
    "LOOKS_LIKE_AMOUNT",
    "LOOKS_LIKE_DATE",
    "LOOKS_LIKE_VERSION",
    "card_iin_lengths",
    "national_lengths",
    "parse_date",
    "validate_card",
    "validate_cn_ric",
    "validate_date",
    "validate_de_idnr",
    "validate_email",
    "validate_es_dni",
    "validate_es_nie",
    "validate_fr_nir",
    "validate_iban",
    "validate_in_aadhaar",
    "validate_ipv4",
    "validate_ipv6",
    "validate_it_cf",
    "validate_mac",
    "validate_nl_bsn",
    "regions_of",
    "validate_phone",
    "validate_uk_nino",
    "validate_url",
    "validate_us_ssn",
]

_SEPARATORS = re.compile(r"[\s\-./]")


def _digits(text: str) -> str:
    return "".join(ch for ch in text if "0" <= ch <= "9")


# --- shapes with no checksum: the pattern is the check ---------------------------------

def validate_email(text: str) -> float | None:
    local, _, domain = text.rpartition("@")
    if not local or ".." in text or domain.startswith((".", "-")):
        return None
    return 0.95


def validate_url(text: str) -> float | None:
    return 0.9 if len(text) > 10 else None


def validate_ipv4(text: str) -> float | None:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return None
    return 0.85


def validate_ipv6(text: str) -> float | None:
    # "::" alone and two-group forms such as "ab::cd" read too often as something else.
    if sum(1 for part in text.split(":") if part) < 3 and text != "::1":
        return None
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return None
    return 0.9


def validate_mac(text: str) -> float | None:
    if len(text) == 14 and text[4] == text[9] == ".":  # Cisco's 001a.2b3c.4d5e (the pattern wants a hex letter)
        return 0.85
    seps = {text[i] for i in range(2, len(text), 3)}
    return 0.85 if len(seps) == 1 else None


# --- payment cards: Luhn and the issuer ranges --------------------------------------------

# (first prefix, last prefix, allowed lengths). Public issuer identification ranges.
_IIN_RANGES: tuple[tuple[str, str, frozenset[int]], ...] = (
    ("4", "4", frozenset({13, 16, 19})),                      # Visa
    ("51", "55", frozenset({16})),                            # Mastercard
    ("2221", "2720", frozenset({16})),                        # Mastercard 2-series
    ("34", "34", frozenset({15})), ("37", "37", frozenset({15})),  # American Express
    ("6011", "6011", frozenset(range(16, 20))),               # Discover
    ("644", "649", frozenset(range(16, 20))),
    ("65", "65", frozenset(range(16, 20))),
    ("622126", "622925", frozenset(range(16, 20))),
    ("300", "305", frozenset(range(14, 20))),                 # Diners Club
    ("3095", "3095", frozenset(range(14, 20))),
    ("36", "36", frozenset(range(14, 20))),
    ("38", "39", frozenset(range(14, 20))),
    ("3528", "3589", frozenset(range(16, 20))),               # JCB
    ("1800", "1800", frozenset({15})), ("2131", "2131", frozenset({15})),  # JCB, legacy
    ("62", "62", frozenset(range(16, 20))),                   # UnionPay
    ("2200", "2204", frozenset(range(16, 20))),               # Mir
    ("50", "50", frozenset(range(12, 20))),                   # Maestro
    ("56", "69", frozenset(range(12, 20))),
    ("0604", "0604", frozenset(range(12, 20))),               # Maestro, legacy
    ("60", "60", frozenset({16})), ("81", "82", frozenset({16})),  # RuPay
    ("508", "508", frozenset({16})),
    ("9792", "9792", frozenset({16})),                        # Troy
    ("1", "1", frozenset({15})),                              # UATP
)


def _expand_iin_ranges() -> dict[str, frozenset[int]]:
    table: dict[str, set[int]] = {}
    for lo, hi, allowed in _IIN_RANGES:
        for prefix in range(int(lo), int(hi) + 1):
            table.setdefault(str(prefix).zfill(len(lo)), set()).update(allowed)
    return {k: frozenset(v) for k, v in table.items()}


_IIN_TABLE = _expand_iin_ranges()
_IIN_PREFIX_LENGTHS = sorted({len(k) for k in _IIN_TABLE})


def card_iin_lengths(number: str) -> frozenset[int]:
    """The lengths any issuer range that covers `number`'s prefix allows (empty: no issuer)."""
    lengths: frozenset[int] = frozenset()
    for size in _IIN_PREFIX_LENGTHS:
        found = _IIN_TABLE.get(number[:size])
        if found:
            lengths |= found
    return lengths


# Base score by length: 16 digits is what most cards have; 15 is American Express (34,
# 37) or rarer; 13- and 12-digit numbers (old Visa, Maestro) collide with EAN-13 barcodes,
# Aadhaar numbers and order ids, so bare they stay below the detection threshold.
_CARD_SCORE_BY_LENGTH = {16: 0.9, 15: 0.6, 14: 0.6, 19: 0.6, 17: 0.5, 18: 0.5, 13: 0.45, 12: 0.4}


def validate_card(text: str) -> float | None:
    number = _digits(text)
    if not 12 <= len(number) <= 19 or len(number) not in card_iin_lengths(number):
        return None
    if not _luhn.is_valid(number):
        return None
    score = _CARD_SCORE_BY_LENGTH[len(number)]
    if len(number) == 15 and number[:2] in ("34", "37"):
        score = 0.8
    if len(number) != len(text.strip()):  # written in groups, as cards are printed
        score = max(score, 0.8)
    return score


# --- IBAN: mod 97 and the national structure, via stdnum ----------------------------------

def validate_iban(text: str) -> float | None:
    compact = "".join(text.split()).upper()
    return 0.95 if _iban.is_valid(compact) else None


# --- phone numbers: phonenumbers, with the default region for national formats ------------

_EXTENSION = re.compile(r"(?i)\s*(?:x|ext\.?|#)\s*[0-9]{1,6}$")


LOOKS_LIKE_DATE = re.compile(r"^(?:[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}|[0-9]{1,2}[-/.][0-9]{1,2}[-/.][0-9]{2,4})$")
LOOKS_LIKE_AMOUNT = re.compile(r"^[0-9]+(?:[.,][0-9]{3})*[.,][0-9]{1,2}$")


@functools.lru_cache(maxsize=512)
def national_lengths(region: str) -> frozenset[int]:
    """Digit counts a number of `region` can have when written without a leading +: the
    national significant number's possible lengths, with the trunk prefix, or with the
    country code in front. Checked before phonenumbers.parse, which costs ~40 µs."""
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if meta is None or meta.general_desc is None:
        return frozenset(range(7, 16))
    lengths = set(meta.general_desc.possible_length or ()) | set(meta.general_desc.possible_length_local_only or ())
    prefix = len(meta.national_prefix or "")
    code = len(str(meta.country_code))
    return frozenset(lengths | {n + prefix for n in lengths} | {n + code for n in lengths})


@functools.lru_cache(maxsize=64)
def regions_of(region: str) -> tuple[str, ...]:
    """The regions a `region` argument names: one ISO 3166 code, or several joined by
    commas (a profile's `regions`), tried in order."""
    return tuple(dict.fromkeys(r.strip().upper() for r in region.split(",") if r.strip())) or ("US",)


# A version or build number, dotted groups one of which is a single digit (120.0.4351.73):
# never a phone number, whose groups are two digits or more.
LOOKS_LIKE_VERSION = re.compile(r"^[0-9]+(?:\.[0-9]+){2,}$")
# The score of a domestic number, written as a phone number is, that no region the profile
# names holds but another's numbering plan does (a Japanese 03-1234-5678 in a US profile).
ELSEWHERE = 0.7


def validate_phone(text: str, region: str) -> float | None:
    """Scores: a valid number written like a phone number (leading +, parentheses,
    spaces or dashes, or several separators) is likely; a bare run of digits that happens
    to be a valid number is not, by itself; a merely *possible* number (right length) is
    weaker still. A column named `phone` or a nearby "tel:" lifts these (see `patterns`).
    Dates, decimal amounts, versions and codes that begin with letters (INV-2024-531702)
    are never phone numbers, whatever their digits.

    `region` may name several regions (`regions_of`): the best score among them counts. A
    formatted domestic number none of them holds is tried in every region whose numbering
    plan its digits fit (`ELSEWHERE`): the profile's regions are a default, not a fence."""
    body = _EXTENSION.sub("", text).strip()
    if body[:1].isalpha() or LOOKS_LIKE_VERSION.match(body) and any(len(g) == 1 for g in body.split(".")):
        return None
    best: float | None = None
    for each in regions_of(region):
        score = _phone_in_region(body, each)
        if score is None:
            return None  # the shape rules a phone out, whatever the region
        best = score if best is None else max(best, score)
    assert best is not None
    if best < ELSEWHERE and _foreign_shaped(body, best) and _valid_elsewhere(body):
        return ELSEWHERE
    return best


def _foreign_shaped(body: str, home_score: float) -> bool:
    """Worth trying other regions' plans: a formatted domestic number that begins with a
    trunk prefix (0…, which no NANP number does) or that no region of the profile could
    even hold (`home_score` 0.2). A possible-but-invalid number of the home region stays
    the home region's."""
    trunk = _digits(body).startswith("0")
    if "." in body and not trunk:
        return False  # dotted groups without a trunk prefix: a version or a reference (2024.1101.0001)
    return _formatted_domestic(body) and (trunk or home_score <= 0.2)


def _formatted(body: str) -> bool:
    separators = sum(1 for ch in body if ch in " -./")
    return body.startswith("+") or "(" in body or separators >= 2 or \
        (separators == 1 and ("-" in body or " " in body))


def _formatted_domestic(body: str) -> bool:
    """Written in groups as a domestic phone number is (two separators or an area code in
    parentheses, and dialled as one: a trunk prefix or ten digits): one dash, as in a
    postcode (01310-100) or a reference, is not enough."""
    separators = sum(1 for ch in body if ch in " -./")
    digits = _digits(body)
    # A trunk prefix (0…) or ten digits or more: a 9-digit 536-22-1234 is an SSN's shape.
    dialled = digits.startswith("0") or len(digits) >= 10
    grouped = "(" in body or separators >= 2 or (separators == 1 and digits.startswith("0") and len(digits) >= 10)
    return not body.startswith("+") and not digits.startswith("00") and dialled and grouped


def _phone_in_region(body: str, region: str) -> float | None:
    digits = _digits(body)
    if not 7 <= len(digits) <= 15 or LOOKS_LIKE_DATE.match(body) or LOOKS_LIKE_AMOUNT.match(body):
        return None
    international = body.startswith("+") or digits.startswith("00")
    if not international and len(digits) not in national_lengths(region):
        return 0.2  # no number of the region has that many digits: phone-shaped at best
    formatted = _formatted(body)
    try:
        number = phonenumbers.parse(body, region)
    except phonenumbers.NumberParseException:
        return 0.2
    if phonenumbers.is_valid_number(number):
        return 0.8 if formatted else 0.45
    if phonenumbers.is_possible_number(number):
        return 0.45 if formatted else 0.3
    return 0.2


@functools.lru_cache(maxsize=1)
def _plans() -> tuple[tuple[str, str, frozenset[int], re.Pattern[str]], ...]:
    """Per region phonenumbers knows: its trunk prefix, national number lengths and
    general pattern, to rule most regions out with a regex before parsing (~40 µs)."""
    plans = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if meta is None or meta.general_desc is None or not meta.general_desc.national_number_pattern:
            continue
        lengths = frozenset(meta.general_desc.possible_length or ())
        plans.append((region, meta.national_prefix or "", lengths, re.compile(meta.general_desc.national_number_pattern)))
    return tuple(plans)


@functools.lru_cache(maxsize=4096)
def _valid_elsewhere(body: str) -> bool:
    """Whether some region holds `body` as a valid domestic number."""
    digits = _digits(body)
    for region, prefix, lengths, pattern in _plans():
        national = digits[len(prefix):] if prefix and digits.startswith(prefix) else digits
        if len(national) not in lengths or not pattern.fullmatch(national):
            continue
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(body, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


# --- national identifiers, checksums via python-stdnum ------------------------------------

def validate_us_ssn(text: str) -> float | None:
    # No checksum: area/group/serial rules only, so the dashed form is what makes it likely.
    if not _ssn.is_valid(text.replace(" ", "-")):
        return None
    return 0.7 if len(text) == 11 else 0.3


# HMRC: the first letter is never D, F, I, Q, U or V; the second never D, F, I, O, Q, U or
# V; BG, GB, KN, NK, NT and TN are never issued. ZZ is the placeholder prefix found in
# temporary and test records, which are still about a person, so it is accepted.
_NINO = re.compile(r"^[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z][0-9]{6}[A-D]$")
_NINO_NEVER = frozenset({"BG", "GB", "KN", "NK", "NT", "TN"})


def validate_uk_nino(text: str) -> float | None:
    compact = "".join(text.split()).upper()
    if not _NINO.match(compact) or compact[:2] in _NINO_NEVER:
        return None
    return 0.85


def validate_de_idnr(text: str) -> float | None:
    if not _idnr.is_valid(text):
        return None
    return 0.6 if " " in text else 0.45


def validate_fr_nir(text: str) -> float | None:
    return 0.85 if _nir.is_valid(text) else None


def validate_es_dni(text: str) -> float | None:
    return 0.85 if _dni.is_valid(text.upper()) else None


def validate_es_nie(text: str) -> float | None:
    return 0.9 if _nie.is_valid(text.upper()) else None


def validate_it_cf(text: str) -> float | None:
    return 0.95 if _cf.is_valid(text.upper()) else None


def validate_nl_bsn(text: str) -> float | None:
    return (0.5 if "." in text else 0.4) if _bsn.is_valid(text) else None


def validate_cn_ric(text: str) -> float | None:
    # stdnum's full validate also looks the birthplace up in a table of county codes that
    # is incomplete (and raises on some of them); the check digit and birth date suffice.
    number = text.upper()
    try:
        if number[-1] != _ric.calc_check_digit(number):
            return None
        _ric.get_birth_date(number)
    except (ValidationError, ValueError, KeyError):
        return None
    return 0.95


def validate_in_aadhaar(text: str) -> float | None:
    if not _aadhaar.is_valid(text):
        return None
    return 0.6 if " " in text else 0.45


# --- dates --------------------------------------------------------------------------------

_NUMERIC_DATE = re.compile(r"^([0-9]{1,4})[-/.]([0-9]{1,2})[-/.]([0-9]{1,4})$")


def _make_date(year: int, month: int, day: int) -> _dt.date | None:
    if year < 100:
        year += 1900 if year > (_dt.date.today().year % 100) else 2000
    if not 1800 <= year <= 2200:
        return None
    try:
        return _dt.date(year, month, day)
    except ValueError:
        return None


def parse_date(text: str) -> _dt.date | None:
    """A calendar date written as Y-M-D, D/M/Y, M/D/Y, D.M.Y, with a month name in one of
    the languages `dates_in_words` knows ("12 March 1985", "March 12, 1985", "5 de marzo de
    1980", "3. März 1958"), or in the CJK form ("1958年10月3日"). Ambiguous day/month
    orders resolve to the first reading that is a real date; what matters here is whether
    it is a date at all."""
    text = text.strip()
    numeric = _NUMERIC_DATE.match(text)
    if numeric:
        a, b, c = (int(g) for g in numeric.groups())
        if len(numeric.group(1)) == 4:
            return _make_date(a, b, c)
        if len(numeric.group(3)) not in (2, 4):
            return None
        return _make_date(c, b, a) or _make_date(c, a, b)
    in_words = read_date_in_words(text)
    return None if in_words is None else _make_date(*in_words)


def validate_date(text: str) -> float | None:
    return 0.6 if parse_date(text) is not None else None

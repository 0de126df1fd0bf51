"""Recognizers: for each PII type, a regex prefilter, a validator, and the words that lend
it context — in a nearby keyword inside free text, or in the column's name.

Every `pattern` is written in the common subset of RE2 (what `pyarrow.compute` runs, over
whole columns) and Python's `re` compiled with `re.ASCII` (what finds the spans inside the
few cells RE2 matched), so that both engines agree on what a candidate is: `[0-9]` not
`\\d`, no look-around, no back-references.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from privet.governance.masking import validators as v
from privet.governance.masking import vectorised
from privet.governance.masking.entities import PiiType

__all__ = [
    "ADDRESS_NUMBER_PATTERN",
    "ADDRESS_PREFIX_PATTERN",
    "ADDRESS_SHAPE_PATTERN",
    "ADDRESS_STREET_PATTERN",
    "CONTEXT_BOOST",
    "DATE_FORMATS",
    "DETECTION_THRESHOLD",
    "GroupRefiner",
    "LAYOUT_BYTES",
    "MAX_SCORE",
    "PERSON_NAME_PATTERN",
    "POSTAL_CODE_PATTERN",
    "RECOGNIZERS",
    "Recognizer",
    "column_hints",
    "recognizer",
]

# A finding at or above this score is reported as detected (classification, scan_text).
DETECTION_THRESHOLD = 0.5
# Added to a finding's score when its column is named for the type, or a keyword for the
# type stands next to it in free text: this is what lifts checksum-only ids over the bar.
CONTEXT_BOOST = 0.35
# Added when the column's name says "some national identifier" without saying which.
GENERIC_ID_BOOST = 0.3
MAX_SCORE = 0.99


@dataclass(frozen=True)
class Recognizer:
    """How one PII type is found.

    `validate(text, region)` scores a match (None: not this type). `refine`, where set,
    finds the span inside a greedy match that validates best.
    `validate_many(texts, region)`, where set, scores a whole list at once as `validate`
    would, NaN where it leaves the decision to `validate` (see `vectorised`).
    `exact` means the pattern is the whole check, so token replacement can run as a
    pyarrow regex replace with no Python. `distinctive` means a single hit is evidence
    even in a column of short codes (the shape alone rules out chance), which is not
    true of a bare number that happens to pass a checksum.
    """

    type: PiiType
    pattern: str
    validate: Callable[[str, str], float | None]
    keywords: tuple[str, ...] = ()
    column_words: tuple[str, ...] = ()
    national_id: bool = False
    exact: bool = False
    distinctive: bool = False
    refine: GroupRefiner | None = None
    literal: str = ""  # a substring every match contains, for a cheaper prefilter
    validate_many: Callable[[list[str], str], np.ndarray] | None = None
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled", re.compile(self.pattern, re.ASCII))


def _ignore_region(check: Callable[[str], float | None]) -> Callable[[str, str], float | None]:
    return lambda text, _region: check(text)


# Printable ASCII but the space, to one letter: a match's layout, for `GroupRefiner.spans`
# (and as a byte table, for layouts computed over a column: strings.translate_bytes).
_LAYOUT = {c: "x" for c in range(0x21, 0x80)}
LAYOUT_BYTES = np.arange(256, dtype=np.uint8)
LAYOUT_BYTES[0x21:0x80] = ord("x")


@functools.lru_cache(maxsize=4096)
def _group_spans(text: str) -> list[tuple[int, int]]:
    gaps = [m.span() for m in re.finditer(r" +", text)]
    if not gaps:
        return []
    starts = [0] + [g[1] for g in gaps[:2]]
    ends = [len(text)] + [g[0] for g in reversed(gaps[-3:])]
    spans = sorted(((s, e) for s in starts for e in ends if e > s and (s, e) != (0, len(text))),
                   key=lambda se: se[0] - se[1])
    return spans[:6]


@dataclass(frozen=True)
class GroupRefiner:
    """A greedy pattern can run an entity into a neighbouring word or number ("… 0151 496
    0489 12 times", "GB29NWBK60161331926819 FOR"). Refining tries the whole match, then
    spans with whole space-separated groups dropped off either end (longest first, a
    handful of tries), and keeps the best-scoring span; a score of `good_enough` ends it."""

    good_enough: float

    def spans(self, text: str) -> list[tuple[int, int]]:
        """The shorter spans tried, in order, when the whole match is not good enough."""
        if " " not in text:
            return []
        # The spans depend only on where the spaces are: texts of one layout share them.
        return _group_spans(text.translate(_LAYOUT))

    def pick(self, text: str, score: Callable[[str], float | None]) -> tuple[int, int, float] | None:
        """(start, end, score) of the best span, scoring each with `score`."""
        whole = score(text)
        if whole is not None and whole >= self.good_enough:
            return (0, len(text), whole)
        best = None if whole is None else (0, len(text), whole)
        for s, e in self.spans(text):
            got = score(text[s:e])
            if got is not None and (best is None or got > best[2]):
                best = (s, e, got)
                if got >= self.good_enough:
                    break
        return best


_NATIONAL_ID_WORDS = ("national id", "id number", "identity number", "personal id")
_GENERIC_ID_COLUMNS = ("nationalid", "citizenid", "personalid", "idnumber", "taxid", "tin", "taxnumber",
                       "taxcode", "identitynumber", "idno", "personnummer")

# Cisco's dotted form, 001a.2b3c.4d5e, with at least one hex letter: twelve digits in groups of
# four are as often a version or a reference number. RE2 has no lookahead, so the group that
# holds the letter is spelled out.
_HEX4, _HEX4_WITH_LETTER = r"[0-9a-f]{4}", r"(?:[a-f][0-9a-f]{3}|[0-9a-f][a-f][0-9a-f]{2}|[0-9a-f]{2}[a-f][0-9a-f]|[0-9a-f]{3}[a-f])"
_CISCO_MAC = (r"\b(?:" + r"|".join(r"\.".join(_HEX4_WITH_LETTER if i == j else _HEX4 for i in range(3)) for j in range(3))
              + r")\b")


RECOGNIZERS: tuple[Recognizer, ...] = (
    Recognizer(
        PiiType.EMAIL,
        # Local part: anything but separators, so "jürgen@…" is matched whole, not from "rgen".
        r"[^\s@<>()\[\]{},;:\"'`/\\|]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}\b",
        _ignore_region(v.validate_email),
        column_words=("email", "mail", "emailaddress", "courriel", "correo"),
        exact=True, distinctive=True, literal="@",
    ),
    Recognizer(
        PiiType.URL,
        r"(?i)\b(?:https?|ftp)://[^\s<>\"'`]*[^\s<>\"'`.,;:!?)\]]|\bwww\.[^\s<>\"'`]*[^\s<>\"'`.,;:!?)\]]",
        _ignore_region(v.validate_url),
        column_words=("url", "uri", "website", "homepage", "link", "webpage"),
        exact=True, distinctive=True,
    ),
    Recognizer(
        PiiType.IP_ADDRESS,
        r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\b",
        _ignore_region(v.validate_ipv4),
        keywords=("ip",),
        column_words=("ip", "ipaddress", "ipv4", "ipv6", "remoteaddr", "clientip"),
        exact=True, distinctive=True,
    ),
    Recognizer(
        PiiType.IP_ADDRESS,
        r"(?i)(?:\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b"
        r"|(?:\b[0-9a-f]{1,4}:){1,6}(?::[0-9a-f]{1,4}){1,6}\b"
        r"|(?:\b[0-9a-f]{1,4}:){1,7}:"
        r"|::(?:[0-9a-f]{1,4}:){0,6}[0-9a-f]{1,4}\b)",
        _ignore_region(v.validate_ipv6),
        column_words=("ip", "ipaddress", "ipv6", "remoteaddr", "clientip"),
        distinctive=True,
    ),
    Recognizer(
        PiiType.MAC_ADDRESS,
        r"(?i)\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b|\b[0-9a-f]{2}(?:-[0-9a-f]{2}){5}\b|" + _CISCO_MAC,
        _ignore_region(v.validate_mac),
        keywords=("mac",),
        column_words=("mac", "macaddress", "hwaddr", "bssid"),
        exact=True, distinctive=True,
    ),
    Recognizer(
        PiiType.IBAN,
        r"(?i)\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{1,4}){3,8}\b",
        _ignore_region(v.validate_iban),
        keywords=("iban", "account", "konto", "compte", "cuenta", "conto", "rekening"),
        column_words=("iban", "account", "bankaccount", "konto"),
        distinctive=True, refine=GroupRefiner(0.9), validate_many=lambda texts, _region: vectorised.iban_scores(texts),
    ),
    Recognizer(
        PiiType.CREDIT_CARD,
        r"\b[0-9](?:[ \-]?[0-9]){11,18}\b",
        _ignore_region(v.validate_card),
        keywords=("card", "visa", "mastercard", "amex", "credit", "debit", "karte", "carte", "tarjeta", "carta"),
        column_words=("card", "cc", "pan", "creditcard", "cardnumber", "ccnumber", "kreditkarte"),
        refine=GroupRefiner(0.9),
    ),
    Recognizer(
        PiiType.US_SSN,
        r"\b[0-9]{3}[ \-][0-9]{2}[ \-][0-9]{4}\b|\b[0-9]{9}\b",
        _ignore_region(v.validate_us_ssn),
        keywords=("ssn", "social security"),
        column_words=("ssn", "socialsecurity", "socialsecuritynumber"),
        national_id=True,
    ),
    Recognizer(
        PiiType.UK_NINO,
        r"(?i)\b[A-Z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\b",
        _ignore_region(v.validate_uk_nino),
        keywords=("national insurance", "nino", "ni number", "ni no"),
        column_words=("nino", "nationalinsurance", "ninumber", "nationalinsurancenumber"),
        national_id=True, distinctive=True,
    ),
    Recognizer(
        PiiType.DE_IDNR,
        r"\b[1-9][0-9] ?[0-9]{3} ?[0-9]{3} ?[0-9]{3}\b",
        _ignore_region(v.validate_de_idnr),
        keywords=("steuer", "idnr", "identifikationsnummer", "tax id", "steuer-id"),
        column_words=("idnr", "steuerid", "steueridentifikationsnummer", "identifikationsnummer",
                      "steuernummer"),
        national_id=True,
    ),
    Recognizer(
        PiiType.FR_NIR,
        r"(?i)\b[12] ?[0-9]{2} ?[0-9]{2} ?(?:[0-9]{2}|2[AB]) ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}\b",
        _ignore_region(v.validate_fr_nir),
        keywords=("sécurité sociale", "securite sociale", "nir", "insee", "sécu", "secu"),
        column_words=("nir", "insee", "securitesociale", "numerosecu", "secu", "numsecu"),
        national_id=True,
    ),
    Recognizer(
        PiiType.ES_DNI,
        r"(?i)\b[0-9]{8}-?[A-Z]\b",
        _ignore_region(v.validate_es_dni),
        keywords=("dni", "nif", "documento"),
        column_words=("dni", "nif", "documento"),
        national_id=True,
    ),
    Recognizer(
        PiiType.ES_NIE,
        r"(?i)\b[XYZ]-?[0-9]{7}-?[A-Z]\b",
        _ignore_region(v.validate_es_nie),
        keywords=("nie", "extranjero"),
        column_words=("nie",),
        national_id=True,
    ),
    Recognizer(
        PiiType.IT_CF,
        r"(?i)\b[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]\b",
        _ignore_region(v.validate_it_cf),
        keywords=("codice fiscale", "c.f.", "cf"),
        column_words=("codicefiscale", "cf", "fiscalcode"),
        national_id=True, distinctive=True,
    ),
    Recognizer(
        PiiType.NL_BSN,
        r"\b[0-9]{4}\.?[0-9]{2}\.?[0-9]{3}\b",
        _ignore_region(v.validate_nl_bsn),
        keywords=("bsn", "burgerservicenummer", "sofi"),
        column_words=("bsn", "burgerservicenummer", "sofinummer", "sofi"),
        national_id=True,
    ),
    Recognizer(
        PiiType.CN_RIC,
        r"(?i)\b[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9X]\b",
        _ignore_region(v.validate_cn_ric),
        keywords=("身份证", "resident id", "id card", "ric"),
        column_words=("ric", "residentid", "shenfenzheng", "idcard", "身份证", "身份证号"),
        national_id=True,
    ),
    Recognizer(
        PiiType.IN_AADHAAR,
        r"\b[2-9][0-9]{3} ?[0-9]{4} ?[0-9]{4}\b",
        _ignore_region(v.validate_in_aadhaar),
        keywords=("aadhaar", "aadhar", "uidai", "uid"),
        column_words=("aadhaar", "aadhar", "uid", "aadhaarnumber"),
        national_id=True,
    ),
    Recognizer(
        PiiType.DATE,
        r"\b(?:[0-9]{4}[\-/.][0-9]{1,2}[\-/.][0-9]{1,2}|[0-9]{1,2}[\-/.][0-9]{1,2}[\-/.](?:[0-9]{4}|[0-9]{2}))\b"
        r"|\b[0-9]{1,2}\.? [A-Za-z]{3,9}\.? [0-9]{4}\b|\b[A-Za-z]{3,9}\.? [0-9]{1,2},? [0-9]{4}\b",
        _ignore_region(v.validate_date),
        keywords=("born", "birth", "dob", "geboren", "née", "né le", "nacido", "nacida", "nato", "nata"),
    ),
    Recognizer(
        PiiType.PHONE,
        r"(?:[+(]|\b)[0-9][0-9 ().\-/]{5,22}[0-9](?: ?(?:x|ext\.?|#) ?[0-9]{1,6})?",
        v.validate_phone,
        keywords=("phone", "tel", "call", "mobile", "cell", "fax", "telefon", "téléphone", "teléfono",
                  "telefono", "handy", "whatsapp", "sms", "contact", "ring", "bel ", "手机", "电话"),
        column_words=("phone", "telephone", "tel", "mobile", "cell", "fax", "telefon", "telefono",
                      "telephone", "telefoon", "handy", "portable", "msisdn", "phonenumber", "contactnumber", "手机", "电话"),
        refine=GroupRefiner(0.8), validate_many=vectorised.phone_scores,
    ),
)

_BY_TYPE: dict[PiiType, tuple[Recognizer, ...]] = {}
for _r in RECOGNIZERS:
    _BY_TYPE[_r.type] = _BY_TYPE.get(_r.type, ()) + (_r,)


def recognizer(pii_type: PiiType) -> tuple[Recognizer, ...]:
    """The recognizers for one type (IP_ADDRESS has two: v4 and v6)."""
    return _BY_TYPE.get(pii_type, ())


# --- column-only types: believed only when the column's name says so -------------------------

# Postcode shapes: US ZIP(+4), UK, Dutch, Canadian, Japanese, Polish, and 3-7 digit codes.
POSTAL_CODE_PATTERN = (
    r"^\s*(?:[0-9]{5}(?:-[0-9]{4})?|[0-9]{3,7}|[0-9]{4} ?[A-Za-z]{2}"
    r"|[A-Za-z]{1,2}[0-9][A-Za-z0-9]? ?[0-9][A-Za-z]{2}|[A-Za-z][0-9][A-Za-z] ?[0-9][A-Za-z][0-9]"
    r"|[0-9]{3}-[0-9]{4}|[0-9]{2}-[0-9]{3})\s*$"
)
# One to six words of letters (any script), with the punctuation names carry.
PERSON_NAME_PATTERN = r"^\s*\p{L}[\p{L}\p{M}'’.\-]*(?:,?\s+\p{L}[\p{L}\p{M}'’.\-]*){0,5},?\s*$"
# Street addresses, in the locales whose conventions the vocabulary below covers (en_US,
# en_GB, de_DE, fr_FR, es_ES, it_IT, nl_NL). An address has no checksum, and street names
# are mostly people's names, so these shapes are believed only in a column named for
# addresses, where a cell is one when it is short address-like text and either
#   - holds a house number beside a word, and a street type: as a word ("170 Kayla
#     Curve", "Piazza Rocco, 24") or ending a capitalised compound ("Schaafstraße 1-8",
#     "Fennelaan 5"); or
#   - begins with a Romance street type and then a capitalised name, after an optional
#     house number: French addresses are often written with no number ("rue Jeanne
#     Henry", "avenue de la Paix").
# The number beside a word keeps product codes out ("SKU-51811-ST"), the capital keeps
# out words that merely end like a street type ("monitoring") and sentences that merely
# begin with one ("Place etc selon couper.").
# RE2 only (pyarrow.compute): `\p{L}` and explicit letter boundaries, since RE2's `\b`
# is ASCII and would split "Callejón" and "Straße".
_EN_STREET_TYPES = (
    "alley", "aly", "annex", "arcade", "avenue", "ave", "bayou", "beach", "bend", "bluff", "bottom",
    "boulevard", "blvd", "branch", "bridge", "brook", "burg", "bypass", "byway", "camp", "canyon", "cape",
    "causeway", "center", "centre", "circle", "cir", "cliff", "close", "club", "common", "corner", "course",
    "court", "ct", "cove", "creek", "crescent", "cres", "crest", "crossing", "crossroad", "curve", "dale",
    "dam", "divide", "drive", "dr", "estate", "expressway", "expy", "extension", "ext", "fall", "ferry",
    "field", "flat", "ford", "forest", "forge", "fork", "fort", "freeway", "fwy", "garden", "gate", "gateway",
    "glen", "green", "grove", "harbor", "harbour", "haven", "heights", "hts", "highway", "hwy", "hill",
    "hollow", "inlet", "island", "isle", "junction", "key", "knoll", "lake", "land", "landing", "lane", "ln",
    "light", "loaf", "lock", "lodge", "loop", "mall", "manor", "meadow", "mews", "mill", "mission",
    "motorway", "mount", "mountain", "neck", "orchard", "oval", "overpass", "parade", "park", "parkway",
    "pkwy", "pass", "passage", "path", "pike", "pine", "place", "pl", "plain", "plaza", "point", "port",
    "prairie", "promenade", "quay", "radial", "ramp", "ranch", "rapid", "rest", "ridge", "rise", "river",
    "road", "rd", "route", "row", "run", "shoal", "shore", "skyway", "spring", "spur", "square", "sq",
    "station", "stravenue", "stream", "street", "st", "summit", "terrace", "ter", "throughway", "trace",
    "track", "trafficway", "trail", "trl", "tunnel", "turnpike", "underpass", "union", "valley", "viaduct",
    "view", "village", "ville", "vista", "walk", "wall", "way", "well", "wharf", "wynd", "yard",
)
# German and Dutch street types, written as a word ("Danielle-Dobes-Ring") or as the end
# of one capitalised compound ("Röhrichtweg", "Lindseysingel"); the first few end a
# compound of any case ("van Dussenstraße", "vanstraße"), since no other word ends so.
_DISTINCT_COMPOUND_TYPES = ("straße", "strasse", "gasse", "platz", "allee", "chaussee", "straat", "laan",
                            "gracht", "singel", "plein", "steeg")
_COMPOUND_STREET_TYPES = _DISTINCT_COMPOUND_TYPES + (
    "str", "ring", "weg", "damm", "ufer", "steig", "stieg", "pfad", "markt", "graben", "brücke", "kai",
    "wall", "promenade", "zeile", "anger", "winkel", "steg", "berg", "hof", "twiete", "kamp", "höhe",
    "bogen", "grund", "siedlung", "gärten", "kade", "dijk", "pad", "baan", "boulevard", "dreef",
    "plantsoen", "kanaal", "wal", "veld", "erf", "haven", "burgwal", "poort", "park", "dam",
)
# French, Spanish, Italian (and Portuguese) street types, written before the name.
_PREFIX_STREET_TYPES = (
    # fr
    "rue", "avenue", "av", "ave", "boulevard", "bd", "bld", "blvd", "chemin", "ch", "impasse", "imp",
    "allée", "allee", "place", "quai", "route", "rte", "cours", "passage", "square", "voie", "sentier",
    "esplanade", "rond-point", "faubourg", "fbg", "chaussée", "parvis", "promenade", "résidence", "cité",
    "hameau", "lieu-dit", "montée", "traverse", "ruelle", "sente", "lotissement", "clos",
    # es
    "calle", "avenida", "avda", "paseo", "plaza", "pza", "plazuela", "camino", "carretera", "ctra",
    "ronda", "travesía", "travesia", "callejón", "callejon", "cuesta", "urbanización", "urbanizacion",
    "urb", "rambla", "pasaje", "pasadizo", "cañada", "glorieta", "vía", "via", "vial", "alameda", "bulevar",
    "carrera", "acceso", "senda", "sendero", "subida", "bajada", "vereda", "jardines", "muelle", "partida",
    "prolongación", "prolongacion", "paraje", "polígono", "poligono", "barrio", "costanilla", "calzada",
    "explanada", "rúa", "rua", "praza",
    # it
    "viale", "piazza", "piazzale", "piazzetta", "corso", "vicolo", "largo", "strada", "contrada", "rotonda",
    "stretto", "borgo", "lungomare", "lungotevere", "lungarno", "salita", "discesa", "vico", "galleria",
    "campo", "traversa", "circonvallazione", "località", "frazione", "canale", "incrocio", "rione", "rampa",
    "riva", "ponte", "fondamenta",
    # pt (avenida, largo, alameda: as above)
    "travessa", "estrada", "praça",
)
_NOT_LETTER = r"(?:[^\p{L}]|$)"
_HOUSE_NUMBER = r"[0-9]{1,5}[A-Za-z]?"
# Particles between a Romance street type and the name: "rue de la Paix", "Via dei Mille".
_PARTICLES = ("de", "du", "des", "la", "le", "les", "del", "los", "las", "della", "dello", "delle", "dei",
              "degli", "di", "da", "do", "dos", "das", "el", "sur", "en", "y", "e")
# Short text of letters, digits and the punctuation addresses use; no '@', ':', '?', ….
ADDRESS_SHAPE_PATTERN = r"^[\p{L}\p{M}0-9\s.,'’\-/#°ºª&()]{4,120}$"
ADDRESS_NUMBER_PATTERN = (
    rf"\p{{L}}{{2}}[.,]?\s+{_HOUSE_NUMBER}(?:[^\p{{L}}0-9]|$)"
    rf"|(?:^|[^\p{{L}}0-9]){_HOUSE_NUMBER},?\s+\p{{L}}['’]?\p{{L}}"
)
ADDRESS_STREET_PATTERN = (
    rf"(?:^|[^\p{{L}}])(?i:(?:{'|'.join(_EN_STREET_TYPES)})(?:s|es)?|{'|'.join(_PREFIX_STREET_TYPES)}"
    rf"|{'|'.join(_COMPOUND_STREET_TYPES)})\.?{_NOT_LETTER}"
    rf"|\p{{Lu}}\p{{L}}*(?i:{'|'.join(_COMPOUND_STREET_TYPES)})\.?{_NOT_LETTER}"
    rf"|(?i:{'|'.join(_DISTINCT_COMPOUND_TYPES)}){_NOT_LETTER}"
)
ADDRESS_PREFIX_PATTERN = (
    rf"^(?:{_HOUSE_NUMBER}(?: ?(?:bis|ter))?,?\s+)?"
    rf"(?i:c/|c\.|(?:{'|'.join(_PREFIX_STREET_TYPES)})\.?\s)\s*"
    rf"(?:(?i:{'|'.join(_PARTICLES)})\s+)*(?:[dlDL]['’])?\p{{Lu}}"
)
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d", "%d-%m-%Y", "%Y%m%d",
                "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S")

_DOB_WORDS = ("dob", "birth", "born", "geburt", "naissance", "nacimiento", "nascita", "geboorte",
              "出生", "出生日期", "生日")
_POSTAL_WORDS = ("zip", "zipcode", "postcode", "postal", "plz", "postleitzahl", "cap", "cp",
                 "pincode", "pin", "codepostal", "codigopostal", "postcodigo", "邮编", "邮政编码")
_NAME_WORDS = ("name", "firstname", "lastname", "fullname", "surname", "givenname", "familyname",
               "forename", "middlename", "maidenname", "vorname", "nachname", "prenom", "prénom",
               "nom", "nombre", "apellido", "apellidos", "nome", "cognome", "naam", "voornaam",
               "achternaam", "姓名", "名字", "姓", "名", "cardholder", "holder")
# "<thing>_name" columns that name things, not people.
_NOT_PERSON = frozenset((
    "product", "company", "business", "brand", "file", "host", "domain", "item", "street", "road",
    "city", "town", "country", "state", "region", "category", "project", "app", "application",
    "table", "column", "field", "model", "dataset", "bank", "org", "organisation", "organization",
    "team", "group", "department", "store", "shop", "vendor", "merchant", "supplier", "event",
    "campaign", "package", "class", "type", "key", "server", "database", "db", "device", "course",
    "school", "hospital", "venue", "place", "location", "building", "title", "job", "role", "tag",
    "label", "species", "drug", "medication", "service", "metric", "feature", "attribute", "sheet",
    "code", "queue", "topic", "bucket", "path", "module", "plan", "tier", "currency", "language",
))


_ADDRESS_WORDS = ("address", "adresse", "adres", "adresa", "anschrift", "street", "strasse", "straße", "straat",
                  "direccion", "dirección", "domicilio", "indirizzo", "endereco", "endereço", "morada", "地址",
                  "住址")
# Short words that name an address only as a whole token (not `caller_id`, `viable`).
_ADDRESS_TOKENS = frozenset(("addr", "calle", "via", "rue"))
# "<thing>_address" columns that hold no postal address.
_NOT_POSTAL = frozenset((
    "ip", "ipv4", "ipv6", "mac", "email", "mail", "e", "hw", "hardware", "ether", "ethernet", "bluetooth",
    "bt", "wallet", "btc", "eth", "bitcoin", "crypto", "contract", "memory", "mem", "base", "server", "host",
    "remote", "local", "node", "peer", "url", "web", "net", "network", "broadcast", "gateway", "multicast",
    "proxy", "smtp", "sender", "recipient", "from", "to", "reply", "cc", "bcc",
))


def _names_an_address(tokens: list[str]) -> bool:
    named = _mentions(tokens, _ADDRESS_WORDS) or bool(set(tokens) & _ADDRESS_TOKENS)
    if not named or set(tokens) & _NOT_POSTAL:
        return False
    # Run-together names: `emailaddress`, `remoteAddr` (camel case is split already).
    for token in tokens:
        for w in ("address", "addr"):
            if token.endswith(w) and token[:-len(w)] in _NOT_POSTAL:
                return False
    return True


def _name_tokens(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [t for t in re.split(r"[^0-9A-Za-z\u00C0-\uFFFF]+", spaced.lower()) if t]


def _mentions(tokens: list[str], words: tuple[str, ...]) -> bool:
    """A word names the column if it is one of its tokens, or (4+ letters) begins or ends
    one, or the tokens run together: `cellphone`, `customerEmail`, `date_of_birth`; but
    not `cancelled` for "cell"."""
    for token in (*tokens, "".join(tokens)):
        for w in words:
            if token == w or (len(w) >= 4 and (token.startswith(w) or token.endswith(w))):
                return True
    return False


def _names_a_person(tokens: list[str]) -> bool:
    if set(tokens) & _NOT_PERSON:
        return False
    for token in (*tokens, "".join(tokens)):
        if token in _NAME_WORDS:
            return True
        if token.endswith("name") and token[:-4] not in _NOT_PERSON and token[:-4] != "re":
            return True
    return False


def column_hints(name: str) -> dict[PiiType, float]:
    """The score boost a column's name lends each type: `customer_email` → EMAIL,
    `Geburtsdatum` → DATE_OF_BIRTH, `national_id` → every national identifier a bit,
    `billing_address` → ADDRESS (but `ip_address` and `email_address` do not)."""
    tokens = _name_tokens(name)
    if not tokens:
        return {}
    hints: dict[PiiType, float] = {}
    for rec in RECOGNIZERS:
        if rec.column_words and _mentions(tokens, rec.column_words):
            hints[rec.type] = CONTEXT_BOOST
    joined = " ".join(tokens)
    if any(w in joined for w in _NATIONAL_ID_WORDS) or _mentions(tokens, _GENERIC_ID_COLUMNS):
        for rec in RECOGNIZERS:
            if rec.national_id:
                hints.setdefault(rec.type, GENERIC_ID_BOOST)
    if _mentions(tokens, _DOB_WORDS):
        hints[PiiType.DATE_OF_BIRTH] = CONTEXT_BOOST
    if _mentions(tokens, _POSTAL_WORDS):
        hints[PiiType.POSTAL_CODE] = CONTEXT_BOOST
    if _names_a_person(tokens):
        hints[PiiType.PERSON_NAME] = CONTEXT_BOOST
    if _names_an_address(tokens):
        hints[PiiType.ADDRESS] = CONTEXT_BOOST
    return hints


def boosted(score: float, boost: float) -> float:
    return min(MAX_SCORE, score + boost)

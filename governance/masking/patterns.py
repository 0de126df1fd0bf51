"""Recognizers: for each PII type, a regex prefilter, a validator, and the words that lend
it context — in a nearby keyword inside free text, or in the column's name.

Every `pattern` is written in the common subset of RE2 (what `pyarrow.compute` runs, over
whole columns) and Python's `re` compiled with `re.ASCII` (what finds the spans inside the
few cells RE2 matched), so that both engines agree on what a candidate is: `[0-9]` not
`\\d`, no look-around, no back-references.

The recognizers' table is the module's one job and most of its length; the types a cell's
shape cannot prove (postcodes, names, addresses) are in `column_patterns` and
`column_names`, re-exported here for the callers that import them from this module.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from privet.governance.masking import national_ids as ids
from privet.governance.masking import validators as v
from privet.governance.masking import vectorised
from privet.governance.masking.address_patterns import (
    ADDRESS_TEXT_PATTERN,
    BR_CEP_PATTERN,
    validate_address,
    validate_br_cep,
)
from privet.governance.masking.column_names import column_only_types, mentions, name_tokens, names_a_national_id
from privet.governance.masking.column_patterns import (
    ADDRESS_NUMBER_PATTERN,
    ADDRESS_PREFIX_PATTERN,
    ADDRESS_SHAPE_PATTERN,
    ADDRESS_STREET_PATTERN,
    DATE_FORMATS,
    PERSON_NAME_PATTERN,
    POSTAL_CODE_PATTERN,
)
from privet.governance.masking.dates_in_words import DATE_IN_WORDS_PATTERN
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
    "boosted",
    "column_hints",
    "recognizer",
]

# Scores of many texts at once: a float per text, NaN where `validate` decides.
ManyScores = Callable[[list[str] | pa.Array, str], npt.NDArray[np.float64]]

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
    validate_many: ManyScores | None = None
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled", re.compile(self.pattern, re.ASCII))

    def validate_all(self, texts: list[str], region: str) -> list[float | None]:
        """`validate` of each text, vectorised where the recognizer can."""
        if self.validate_many is None:
            return [self.validate(t, region) for t in texts]
        scores = self.validate_many(texts, region).tolist()
        return [self.validate(t, region) if s != s else (None if s < 0 else s) for t, s in zip(texts, scores)]


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


# Cisco's dotted form, 001a.2b3c.4d5e, with at least one hex letter: twelve digits in groups of
# four are as often a version or a reference number. RE2 has no lookahead, so the group that
# holds the letter is spelled out.
_HEX4, _HEX4_WITH_LETTER = r"[0-9a-f]{4}", r"(?:[a-f][0-9a-f]{3}|[0-9a-f][a-f][0-9a-f]{2}|[0-9a-f]{2}[a-f][0-9a-f]|[0-9a-f]{3}[a-f])"
_CISCO_MAC = (r"\b(?:" + r"|".join(r"\.".join(_HEX4_WITH_LETTER if i == j else _HEX4 for i in range(3)) for j in range(3))
              + r")\b")


# Scripts written without spaces, and full-width punctuation (as literal ranges, which RE2
# and Python's re both read): a Latin-script entity ends where they begin.
_UNSPACED = "\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uff00-\uffef"


RECOGNIZERS: tuple[Recognizer, ...] = (
    Recognizer(
        PiiType.EMAIL,
        # Local part: anything but separators, so "jürgen@…" is matched whole, not from "rgen";
        # nor CJK or full-width text, which runs into an address with no space before it
        # ("請求書をrito@example.net" is rito@example.net).
        r"[^\s@<>()\[\]{},;:\"'`/\\|" + _UNSPACED + r"]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}\b",
        _ignore_region(v.validate_email),
        column_words=("email", "mail", "emailaddress", "courriel", "correo"),
        exact=True, distinctive=True, literal="@",
    ),
    Recognizer(
        PiiType.URL,
        # A URL ends where CJK or full-width text begins (http://kato.org/、個人番号…).
        r"(?i)\b(?:https?|ftp)://[^\s<>\"'`" + _UNSPACED + r"]*[^\s<>\"'`.,;:!?)\]" + _UNSPACED + r"]"
        r"|\bwww\.[^\s<>\"'`" + _UNSPACED + r"]*[^\s<>\"'`.,;:!?)\]" + _UNSPACED + r"]",
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
    # Brazil. The punctuated CPF is how it is printed and nothing else is; bare, its eleven
    # digits are any number that passes two check digits, so they need context.
    Recognizer(
        PiiType.BR_CPF,
        r"\b[0-9]{3}\.[0-9]{3}\.[0-9]{3}-[0-9]{2}\b",
        _ignore_region(ids.validate_br_cpf),
        keywords=("cpf", "cadastro de pessoas", "cadastro de pessoa física", "cadastro de pessoa fisica"),
        column_words=("cpf",),
        national_id=True, distinctive=True,
    ),
    Recognizer(
        PiiType.BR_CPF,
        r"\b[0-9]{11}\b",
        _ignore_region(ids.validate_br_cpf),
        keywords=("cpf", "cadastro de pessoas", "cadastro de pessoa física", "cadastro de pessoa fisica"),
        column_words=("cpf",),
        national_id=True,
    ),
    Recognizer(
        PiiType.BR_CNPJ,
        r"\b[0-9]{2}\.[0-9]{3}\.[0-9]{3}/[0-9]{4}-[0-9]{2}\b|\b[0-9]{14}\b",
        _ignore_region(ids.validate_br_cnpj),
        keywords=("cnpj", "cadastro nacional da pessoa jurídica", "cadastro nacional da pessoa juridica"),
        column_words=("cnpj",),
        national_id=True,
    ),
    Recognizer(
        PiiType.JP_MY_NUMBER,
        r"\b[0-9]{4}[ \-]?[0-9]{4}[ \-]?[0-9]{4}\b",
        _ignore_region(ids.validate_jp_my_number),
        keywords=("マイナンバー", "個人番号", "my number", "mynumber", "individual number", "kojin bango"),
        column_words=("mynumber", "マイナンバー", "個人番号", "kojinbango"),
        national_id=True,
    ),
    Recognizer(
        PiiType.PL_PESEL,
        r"\b[0-9]{11}\b",
        _ignore_region(ids.validate_pl_pesel),
        keywords=("pesel",),
        column_words=("pesel",),
        national_id=True,
    ),
    Recognizer(
        PiiType.PT_NIF,
        r"\b[1-3][0-9]{8}\b",
        _ignore_region(ids.validate_pt_nif),
        keywords=("nif", "contribuinte", "número de identificação fiscal", "numero de identificacao fiscal"),
        column_words=("nif", "contribuinte", "numerocontribuinte"),
        national_id=True,
    ),
    Recognizer(
        PiiType.SE_PERSONNUMMER,
        r"\b(?:[0-9]{2})?[0-9]{6}[\-+][0-9]{4}\b|\b(?:19|20)[0-9]{10}\b",
        _ignore_region(ids.validate_se_personnummer),
        keywords=("personnummer", "personnr", "person nr", "personnumret"),
        column_words=("personnummer", "personnr"),
        national_id=True,
    ),
    Recognizer(
        PiiType.KR_RRN,
        r"\b[0-9]{6}-?[0-9]{7}\b",
        _ignore_region(ids.validate_kr_rrn),
        keywords=("주민등록번호", "주민번호", "resident registration", "rrn"),
        column_words=("rrn", "주민등록번호", "주민번호", "residentregistration"),
        national_id=True,
    ),
    Recognizer(
        PiiType.MX_CURP,
        r"(?i)\b[A-Z]{4}[0-9]{6}[HMX][A-Z]{5}[0-9A-Z][0-9]\b",
        _ignore_region(ids.validate_mx_curp),
        keywords=("curp",),
        column_words=("curp",),
        national_id=True, distinctive=True,
    ),
    Recognizer(
        PiiType.AR_CUIT,
        r"\b(?:20|23|24|27|30|33|34)-?[0-9]{8}-?[0-9]\b",
        _ignore_region(ids.validate_ar_cuit),
        keywords=("cuit", "cuil"),
        column_words=("cuit", "cuil"),
        national_id=True,
    ),
    Recognizer(
        PiiType.CL_RUT,
        r"\b[0-9]{1,2}\.?[0-9]{3}\.?[0-9]{3}-[0-9Kk]\b",
        _ignore_region(ids.validate_cl_rut),
        keywords=("rut", "run", "rol único tributario", "rol unico tributario"),
        column_words=("rut",),
        national_id=True,
    ),
    Recognizer(
        PiiType.BE_NN,
        r"\b[0-9]{2}\.[0-9]{2}\.[0-9]{2}-[0-9]{3}\.[0-9]{2}\b|\b[0-9]{11}\b",
        _ignore_region(ids.validate_be_nn),
        keywords=("rijksregisternummer", "rijksregister", "numéro national", "numero national", "registre national",
                  "national number", "niss", "insz"),
        column_words=("rijksregisternummer", "rijksregister", "niss", "insz", "numeronational"),
        national_id=True,
    ),
    Recognizer(
        PiiType.FI_HETU,
        r"\b[0-9]{6}[\-+ABCDEFUVWXY][0-9]{3}[0-9A-FHJ-NPR-Y]\b",
        _ignore_region(ids.validate_fi_hetu),
        keywords=("henkilötunnus", "henkilotunnus", "hetu", "personbeteckning"),
        column_words=("henkilotunnus", "henkilötunnus", "hetu", "personbeteckning"),
        national_id=True, distinctive=True,
    ),
    Recognizer(
        PiiType.NO_FNR,
        r"\b[0-9]{6} ?[0-9]{5}\b",
        _ignore_region(ids.validate_no_fnr),
        keywords=("fødselsnummer", "fodselsnummer", "personnummer", "fnr"),
        column_words=("fodselsnummer", "fødselsnummer", "fnr"),
        national_id=True,
    ),
    Recognizer(
        PiiType.TR_TCKN,
        r"\b[1-9][0-9]{10}\b",
        _ignore_region(ids.validate_tr_tckn),
        keywords=("tc kimlik", "t.c. kimlik", "kimlik no", "kimlik numarası", "tckn", "tc no"),
        column_words=("tckimlik", "kimlik", "tckn", "kimlikno"),
        national_id=True,
    ),
    Recognizer(
        PiiType.CH_AHV,
        r"\b756\.?[0-9]{4}\.?[0-9]{4}\.?[0-9]{2}\b",
        _ignore_region(ids.validate_ch_ahv),
        keywords=("ahv", "avs", "sozialversicherungsnummer", "numéro avs", "avs-nummer", "ahv-nummer"),
        column_words=("ahv", "avs", "ahvnummer", "avsnumber", "sozialversicherungsnummer"),
        national_id=True,
    ),
    Recognizer(
        PiiType.DATE,
        r"\b(?:[0-9]{4}[\-/.][0-9]{1,2}[\-/.][0-9]{1,2}|[0-9]{1,2}[\-/.][0-9]{1,2}[\-/.](?:[0-9]{4}|[0-9]{2}))\b|"
        + DATE_IN_WORDS_PATTERN,
        _ignore_region(v.validate_date),
        keywords=("born", "birth", "dob", "geboren", "née", "né le", "nacido", "nacida", "nato", "nata",
                  "nascido", "nascida", "data de nascimento", "fecha de nacimiento", "date de naissance",
                  "geburtsdatum", "geboortedatum", "data di nascita", "urodzony", "urodzona", "生年月日",
                  "出生日期", "生まれ", "생년월일"),
    ),
    # Free text: a street type with a house number, or a CJK address down to the number;
    # a Brazilian CEP beside its keyword (a column of either: see column_patterns).
    Recognizer(
        PiiType.ADDRESS,
        ADDRESS_TEXT_PATTERN,
        _ignore_region(validate_address),
        keywords=("address", "lives at", "live at", "living at", "resides at", "located at", "moved to",
                  "endereço", "endereco", "morada", "moro na", "moro em", "dirección", "direccion", "domicilio",
                  "vivo en", "indirizzo", "abito in", "residente in", "adresse", "anschrift", "wohnhaft",
                  "adres", "woont", "住所", "地址", "住址"),
    ),
    Recognizer(
        PiiType.POSTAL_CODE,
        BR_CEP_PATTERN,
        _ignore_region(validate_br_cep),
        keywords=("cep", "código postal", "codigo postal"),
        column_words=("cep",),
    ),
    Recognizer(
        PiiType.PHONE,
        # A letter prefix glued on (INV-2024-531702, SKU/4155550100) is matched with the
        # number so that validate_phone sees a code, not a phone number.
        r"(?:\b[A-Za-z]{1,10}[\-_#/]|[+(]|\b)[0-9][0-9 ().\-/]{5,22}[0-9](?: ?(?:x|ext\.?|#) ?[0-9]{1,6})?",
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



def column_hints(name: str) -> dict[PiiType, float]:
    """The score boost a column's name lends each type: `customer_email` → EMAIL,
    `Geburtsdatum` → DATE_OF_BIRTH, `national_id` → every national identifier a bit,
    `billing_address` → ADDRESS (but `ip_address` and `email_address` do not)."""
    tokens = name_tokens(name)
    if not tokens:
        return {}
    hints: dict[PiiType, float] = {}
    for rec in RECOGNIZERS:
        if rec.column_words and mentions(tokens, rec.column_words):
            hints[rec.type] = CONTEXT_BOOST
    if names_a_national_id(tokens):
        for rec in RECOGNIZERS:
            if rec.national_id:
                hints.setdefault(rec.type, GENERIC_ID_BOOST)
    for pii_type in column_only_types(tokens):
        hints[pii_type] = CONTEXT_BOOST
    return hints


def boosted(score: float, boost: float) -> float:
    return min(MAX_SCORE, score + boost)

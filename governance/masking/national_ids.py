"""Validators for the personal identifiers of Brazil, Japan and the other countries whose
numbers python-stdnum checks, beyond those in `validators`.

Scores follow `validators`: what the check and the written form prove together. A run of
bare digits that passes a one- or two-digit checksum is right one time in ten or a hundred
by chance, and an 11-digit number passes *some* country's check more often still, so bare
forms score 0.3: below `free_text.SCAN_MIN_SCORE`, they need a keyword or a column name
(`patterns.CONTEXT_BOOST`) to count. The written forms no other number has
(`123.456.789-09`, `85.07.30-033.28`, a CURP's letters) are believed alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from stdnum.ar import cuit as _cuit
from stdnum.be import nn as _be_nn
from stdnum.br import cnpj as _cnpj
from stdnum.br import cpf as _cpf
from stdnum.ch import ssn as _ch_ssn
from stdnum.cl import rut as _rut
from stdnum.fi import hetu as _hetu
from stdnum.jp import in_ as _jp_in
from stdnum.kr import rrn as _rrn
from stdnum.mx import curp as _curp
from stdnum.no import fodselsnummer as _no_fnr
from stdnum.pl import pesel as _pesel
from stdnum.pt import nif as _pt_nif
from stdnum.se import personnummer as _se_pn
from stdnum.tr import tckimlik as _tckimlik

__all__ = [
    "BARE",
    "validate_ar_cuit",
    "validate_be_nn",
    "validate_br_cnpj",
    "validate_br_cpf",
    "validate_ch_ahv",
    "validate_cl_rut",
    "validate_fi_hetu",
    "validate_jp_my_number",
    "validate_kr_rrn",
    "validate_mx_curp",
    "validate_no_fnr",
    "validate_pl_pesel",
    "validate_pt_nif",
    "validate_se_personnummer",
    "validate_tr_tckn",
]

# A bare run of digits that passes the check: evidence only beside a keyword or in a named column.
BARE = 0.3


def _digits(text: str) -> str:
    return "".join(ch for ch in text if "0" <= ch <= "9")


def _one_digit_repeated(digits: str) -> bool:
    # 000.000.000-00, 111.111.111-11: placeholders that pass the checksums, never issued.
    return len(set(digits)) == 1


def _scored(is_valid: Callable[[str], bool], written: Callable[[str], float]) -> Callable[[str], float | None]:
    def validate(text: str) -> float | None:
        digits = _digits(text)
        if digits and _one_digit_repeated(digits):
            return None
        return written(text) if is_valid(text) else None
    return validate


_CPF_WRITTEN = re.compile(r"^[0-9]{3}\.[0-9]{3}\.[0-9]{3}-[0-9]{2}$")
_CNPJ_WRITTEN = re.compile(r"^[0-9]{2}\.[0-9]{3}\.[0-9]{3}/[0-9]{4}-[0-9]{2}$")
_BE_WRITTEN = re.compile(r"^[0-9]{2}\.[0-9]{2}\.[0-9]{2}-[0-9]{3}\.[0-9]{2}$")
_AHV_WRITTEN = re.compile(r"^756\.[0-9]{4}\.[0-9]{4}\.[0-9]{2}$")
_RUT_DOTTED = re.compile(r"^[0-9]{1,2}\.[0-9]{3}\.[0-9]{3}-[0-9Kk]$")


def _bare_or(form: re.Pattern[str], score: float) -> Callable[[str], float]:
    return lambda text: score if form.match(text) else BARE


def _grouped(score: float) -> Callable[[str], float]:
    """`score` when written in groups (any separator), BARE when a run of digits."""
    return lambda text: score if not text.isdigit() else BARE


# Brazil: CPF (people) and CNPJ (companies; a tax id all the same). The punctuated forms are
# how the Receita Federal prints them and nothing else is written so.
validate_br_cpf = _scored(_cpf.is_valid, _bare_or(_CPF_WRITTEN, 0.9))
validate_br_cnpj = _scored(_cnpj.is_valid, _bare_or(_CNPJ_WRITTEN, 0.95))
# Japan: My Number (個人番号), 12 digits with a mod-11 check digit. Grouped 4-4-4 it is also
# the shape of an Aadhaar number or a 12-digit card, so it still wants context to count.
validate_jp_my_number = _scored(_jp_in.is_valid, _grouped(0.45))
# Poland: PESEL, birth date and a check digit; no usual written form.
validate_pl_pesel = _scored(_pesel.is_valid, lambda _text: BARE)
# Portugal: NIF of a person (first digit 1-3; the pattern admits only those).
validate_pt_nif = _scored(_pt_nif.is_valid, lambda _text: BARE)
# Sweden: YYMMDD-XXXX (+ past a hundred years), Luhn over the last ten digits. Date-stamped
# reference numbers share the dashed shape, so dashed it is likely, not certain; with the
# century (YYYYMMDD-XXXX) it is the very shape of a build or batch number ("20240115-1234").
_SE_SHORT = re.compile(r"^[0-9]{6}[\-+][0-9]{4}$")
validate_se_personnummer = _scored(_se_pn.is_valid, _bare_or(_SE_SHORT, 0.45))
# South Korea: YYMMDD-SXXXXXX, a mod-11 check digit.
validate_kr_rrn = _scored(_rrn.is_valid, _grouped(0.45))
# Argentina: CUIT/CUIL, XX-XXXXXXXX-X with a type prefix and a mod-11 check digit.
validate_ar_cuit = _scored(_cuit.is_valid, _grouped(0.6))
# Belgium: national number, YY.MM.DD-XXX.CC with a mod-97 check.
validate_be_nn = _scored(_be_nn.is_valid, _bare_or(_BE_WRITTEN, 0.9))
# Norway: fødselsnummer, DDMMYY IIICC with two mod-11 check digits.
validate_no_fnr = _scored(_no_fnr.is_valid, _grouped(0.45))
# Turkey: T.C. kimlik no, 11 digits with two check digits.
validate_tr_tckn = _scored(_tckimlik.is_valid, lambda _text: BARE)
# Switzerland: AHV/AVS number, 756.XXXX.XXXX.XX with an EAN-13 check digit.
validate_ch_ahv = _scored(_ch_ssn.is_valid, _bare_or(_AHV_WRITTEN, 0.95))


def validate_cl_rut(text: str) -> float | None:
    """Chile: RUT/RUN, 12.345.678-5; the check character may be K. Dotted, nothing else is
    written so; dash only, it is a number with a check digit beside it."""
    if not _rut.is_valid(text):
        return None
    return 0.85 if _RUT_DOTTED.match(text) else 0.45


def validate_mx_curp(text: str) -> float | None:
    """Mexico: CURP, 18 letters and digits with the birth date and a check digit."""
    return 0.95 if _curp.is_valid(text.upper()) else None


def validate_fi_hetu(text: str) -> float | None:
    """Finland: henkilötunnus, DDMMYY, a century sign, three digits, a check character."""
    return 0.9 if _hetu.is_valid(text.upper()) else None

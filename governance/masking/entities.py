"""The kinds of personal data the detectors know, and what a detection looks like."""

from __future__ import annotations

import functools
from enum import StrEnum
from typing import NamedTuple

__all__ = ["COLUMN_ONLY_TYPES", "STRUCTURED_TYPES", "TEXT_TYPES", "Finding", "PiiType", "type_token"]


class PiiType(StrEnum):
    """One detector each. The value is what profiles write in `pii_type:`."""

    EMAIL = "EMAIL"
    PHONE = "PHONE"
    CREDIT_CARD = "CREDIT_CARD"
    IBAN = "IBAN"
    US_SSN = "US_SSN"
    UK_NINO = "UK_NINO"
    DE_IDNR = "DE_IDNR"
    FR_NIR = "FR_NIR"
    ES_DNI = "ES_DNI"
    ES_NIE = "ES_NIE"
    IT_CF = "IT_CF"
    NL_BSN = "NL_BSN"
    CN_RIC = "CN_RIC"
    IN_AADHAAR = "IN_AADHAAR"
    BR_CPF = "BR_CPF"
    # A company's tax id, as often in a person's records (sole traders) as any tax id.
    BR_CNPJ = "BR_CNPJ"
    JP_MY_NUMBER = "JP_MY_NUMBER"
    PL_PESEL = "PL_PESEL"
    PT_NIF = "PT_NIF"
    SE_PERSONNUMMER = "SE_PERSONNUMMER"
    KR_RRN = "KR_RRN"
    MX_CURP = "MX_CURP"
    AR_CUIT = "AR_CUIT"
    CL_RUT = "CL_RUT"
    BE_NN = "BE_NN"
    FI_HETU = "FI_HETU"
    NO_FNR = "NO_FNR"
    TR_TCKN = "TR_TCKN"
    CH_AHV = "CH_AHV"
    IP_ADDRESS = "IP_ADDRESS"
    URL = "URL"
    MAC_ADDRESS = "MAC_ADDRESS"
    # A calendar date inside free text (a birth date, an appointment: either can identify).
    DATE = "DATE"
    # Only in columns whose name says so: a date column is not personal data by itself.
    DATE_OF_BIRTH = "DATE_OF_BIRTH"
    POSTAL_CODE = "POSTAL_CODE"
    PERSON_NAME = "PERSON_NAME"
    # A street address (house number, street): in free text when written with a street type
    # and a number (see `address_patterns`); a column of them only when its name says so.
    ADDRESS = "ADDRESS"
    # A city, region or place named in free text without a street (names_and_places).
    LOCATION = "LOCATION"
    # A column of prose that holds entities of the types above; masked by `scan`.
    FREE_TEXT = "FREE_TEXT"


class Finding(NamedTuple):
    """One detected entity: its type, a confidence in [0, 1], and the span [start, end)
    in Python string (code point) offsets of the cell it was found in."""

    type: PiiType
    score: float
    start: int
    end: int


@functools.cache
def type_token(pii_type: PiiType | str) -> str:
    """The placeholder `scan` writes in place of an entity: `<EMAIL>`."""
    return f"<{PiiType(pii_type).value}>"


# Types a free-text scan looks for (anything with a pattern of its own).
TEXT_TYPES: tuple[PiiType, ...] = (
    PiiType.EMAIL, PiiType.URL, PiiType.IP_ADDRESS, PiiType.MAC_ADDRESS, PiiType.IBAN,
    PiiType.CREDIT_CARD, PiiType.PHONE, PiiType.US_SSN, PiiType.UK_NINO, PiiType.DE_IDNR,
    PiiType.FR_NIR, PiiType.ES_DNI, PiiType.ES_NIE, PiiType.IT_CF, PiiType.NL_BSN,
    PiiType.CN_RIC, PiiType.IN_AADHAAR, PiiType.BR_CPF, PiiType.BR_CNPJ, PiiType.JP_MY_NUMBER, PiiType.PL_PESEL,
    PiiType.PT_NIF, PiiType.SE_PERSONNUMMER, PiiType.KR_RRN, PiiType.MX_CURP, PiiType.AR_CUIT, PiiType.CL_RUT,
    PiiType.BE_NN, PiiType.FI_HETU, PiiType.NO_FNR, PiiType.TR_TCKN, PiiType.CH_AHV, PiiType.DATE,
    # Column-only types that free text also holds in a recognisable form: a street address
    # with its number, a Brazilian CEP beside its keyword.
    PiiType.ADDRESS, PiiType.POSTAL_CODE,
)

# Types that need the column's name to be believed as a column's type (no checksum, no
# distinctive shape); an address and a CEP are also found inside free text.
COLUMN_ONLY_TYPES: tuple[PiiType, ...] = (PiiType.DATE_OF_BIRTH, PiiType.POSTAL_CODE, PiiType.PERSON_NAME,
                                          PiiType.ADDRESS)

# Types a whole column can be classified as.
STRUCTURED_TYPES: tuple[PiiType, ...] = tuple(
    t for t in TEXT_TYPES if t is not PiiType.DATE and t not in COLUMN_ONLY_TYPES) + COLUMN_ONLY_TYPES

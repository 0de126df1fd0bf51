"""Faker-made personal data for the masking tests, valid by the issuers' rules.

Faker gets a few identifiers wrong, and the detectors rightly reject those, so here the
generators fix them from Faker's own randomness: en_GB `ssn()` gives `ZZ…T`, whose
suffix letter no NINO has; en_IN `aadhaar_id()` ends in a Luhn digit where UIDAI uses
Verhoeff; `credit_card_number("jcb16")` uses prefixes 3500-3527 and 3590-3599, outside
JCB's 3528-3589; de_DE has no Steuer-ID generator at all.
"""

from __future__ import annotations

from collections import Counter

import pytest
from faker import Faker
from stdnum import luhn, verhoeff
from stdnum.iso7064 import mod_11_10

LOCALE_REGIONS = {
    "en_US": "US", "en_GB": "GB", "de_DE": "DE", "fr_FR": "FR", "es_ES": "ES",
    "it_IT": "IT", "nl_NL": "NL", "zh_CN": "CN", "en_IN": "IN",
}

# The national identifier(s) each locale issues.
NATIONAL_IDS = {
    "en_US": ("US_SSN",), "en_GB": ("UK_NINO",), "de_DE": ("DE_IDNR",), "fr_FR": ("FR_NIR",),
    "es_ES": ("ES_DNI", "ES_NIE"), "it_IT": ("IT_CF",), "nl_NL": ("NL_BSN",), "zh_CN": ("CN_RIC",),
    "en_IN": ("IN_AADHAAR",),
}
COMMON_TYPES = ("EMAIL", "PHONE", "CREDIT_CARD", "IP_ADDRESS", "MAC_ADDRESS", "URL",
                "DATE_OF_BIRTH", "POSTAL_CODE", "PERSON_NAME")
IBAN_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL")
# The locales whose street-address conventions the ADDRESS detector knows.
ADDRESS_LOCALES = IBAN_LOCALES

# The column name a table from that locale would plausibly use.
_COLUMN_NAMES = {
    "EMAIL": {"de_DE": "e_mail", "fr_FR": "courriel", "es_ES": "correo"},
    "PHONE": {"de_DE": "telefon", "fr_FR": "telephone", "es_ES": "telefono", "it_IT": "telefono",
              "nl_NL": "telefoon", "zh_CN": "手机", "en_IN": "mobile"},
    "DATE_OF_BIRTH": {"de_DE": "geburtsdatum", "fr_FR": "date_naissance", "es_ES": "fecha_nacimiento",
                      "it_IT": "data_nascita", "nl_NL": "geboortedatum", "zh_CN": "出生日期"},
    "POSTAL_CODE": {"de_DE": "plz", "fr_FR": "code_postal", "es_ES": "codigo_postal", "it_IT": "cap",
                    "nl_NL": "postcode", "zh_CN": "邮编", "en_IN": "pincode", "en_US": "zip"},
    "PERSON_NAME": {"de_DE": "name", "fr_FR": "nom", "es_ES": "nombre", "it_IT": "nome", "nl_NL": "naam",
                    "zh_CN": "姓名"},
    "ADDRESS": {"en_GB": "street_address", "de_DE": "anschrift", "fr_FR": "adresse", "es_ES": "direccion",
                "it_IT": "indirizzo", "nl_NL": "adres"},
}
_DEFAULT_COLUMN = {
    "EMAIL": "email", "PHONE": "phone", "CREDIT_CARD": "card_number", "IBAN": "iban",
    "IP_ADDRESS": "ip_address", "MAC_ADDRESS": "mac_address", "URL": "website",
    "DATE_OF_BIRTH": "date_of_birth", "POSTAL_CODE": "postcode", "PERSON_NAME": "full_name",
    "US_SSN": "ssn", "UK_NINO": "nino", "DE_IDNR": "steuer_id", "FR_NIR": "nir", "ES_DNI": "dni",
    "ES_NIE": "nie", "IT_CF": "codice_fiscale", "NL_BSN": "bsn", "CN_RIC": "resident_id",
    "IN_AADHAAR": "aadhaar", "ADDRESS": "address",
}


def column_name(pii_type: str, locale: str) -> str:
    return _COLUMN_NAMES.get(pii_type, {}).get(locale, _DEFAULT_COLUMN[pii_type])


def structured_cases() -> list[tuple[str, str]]:
    """(locale, type) pairs with a Faker-backed generator."""
    cases = [(loc, t) for loc in LOCALE_REGIONS for t in COMMON_TYPES]
    cases += [(loc, "IBAN") for loc in IBAN_LOCALES]
    cases += [(loc, "ADDRESS") for loc in ADDRESS_LOCALES]
    cases += [(loc, t) for loc, ids in NATIONAL_IDS.items() for t in ids]
    return cases


class PiiFaker:
    """Seeded Faker per locale, and generators for every PII type the detectors know."""

    _CARD_TYPES = ("maestro", "mastercard", "visa16", "visa13", "visa19", "amex", "discover", "diners", "jcb15")

    def __init__(self, seed: int = 5) -> None:
        self._fakers: dict[str, Faker] = {}
        self._seed = seed
        self._shared_non_pii: dict[str, dict[str, list]] = {}
        self._shared_free_text: dict[str, tuple[list[str], list[list[str]]]] = {}

    regions = LOCALE_REGIONS
    national_ids = NATIONAL_IDS
    column_name = staticmethod(column_name)

    def faker(self, locale: str) -> Faker:
        if locale not in self._fakers:
            f = Faker(locale)
            f.seed_instance(self._seed)
            self._fakers[locale] = f
        return self._fakers[locale]

    # -- identifiers Faker gets wrong or lacks --

    @staticmethod
    def card(f: Faker) -> str:
        if f.random_int(0, 9) == 0:  # JCB 16 in its real range
            body = str(f.random_int(3528, 3589)) + f.numerify("###########")
            return body + luhn.calc_check_digit(body)
        try:
            return f.credit_card_number(card_type=f.random_element(PiiFaker._CARD_TYPES))
        except KeyError:  # zh_CN has its own card list (UnionPay, Visa, Mastercard), all valid
            return f.credit_card_number()

    @staticmethod
    def nino(f: Faker) -> str:
        first, second = "ABCEGHJKLMNOPRSTWXYZ", "ABCEGHJKLMNPRSTWXYZ"
        while True:
            prefix = f.random_element(first) + f.random_element(second)
            if prefix not in ("BG", "GB", "KN", "NK", "NT", "TN"):
                break
        number = prefix + f.numerify("######") + f.random_element("ABCD")
        return number if f.random_int(0, 1) else f"{number[:2]} {number[2:4]} {number[4:6]} {number[6:8]} {number[8]}"

    @staticmethod
    def idnr(f: Faker) -> str:
        while True:
            digits = str(f.random_int(1, 9)) + f.numerify("#########")
            repeats = [c for c in Counter(digits).values() if c > 1]
            if len(repeats) == 1 and repeats[0] in (2, 3):
                return digits + mod_11_10.calc_check_digit(digits)

    @staticmethod
    def aadhaar(f: Faker) -> str:
        while True:
            body = str(f.random_int(2, 9)) + f.numerify("##########")
            number = body + verhoeff.calc_check_digit(body)
            if number != number[::-1]:
                return number

    def value(self, pii_type: str, locale: str) -> str:
        f = self.faker(locale)
        match pii_type:
            case "EMAIL":
                return f.random_element((f.email, f.free_email, f.company_email))()
            case "PHONE":
                return f.phone_number()
            case "CREDIT_CARD":
                return self.card(f)
            case "IBAN":
                return f.iban()
            case "IP_ADDRESS":
                return f.ipv4() if f.random_int(0, 1) else f.ipv6()
            case "MAC_ADDRESS":
                return f.mac_address()
            case "URL":
                return f.url() if f.random_int(0, 1) else f.uri()
            case "DATE_OF_BIRTH":
                return f.date_of_birth(minimum_age=1, maximum_age=100).isoformat()
            case "POSTAL_CODE":
                return f.postcode()
            case "PERSON_NAME":
                return f.name()
            case "US_SSN":
                return f.ssn()
            case "UK_NINO":
                return self.nino(f)
            case "DE_IDNR":
                return self.idnr(f)
            case "FR_NIR":
                return f.ssn()
            case "ES_DNI":
                return f.nif()
            case "ES_NIE":
                return f.nie()
            case "IT_CF":
                return f.ssn()
            case "NL_BSN":
                return f.ssn()
            case "CN_RIC":
                return f.ssn()
            case "IN_AADHAAR":
                return self.aadhaar(f)
            case "ADDRESS":
                return f.street_address()
        raise KeyError(pii_type)

    def values(self, pii_type: str, locale: str, n: int) -> list[str]:
        return [self.value(pii_type, locale) for _ in range(n)]

    # -- data that is not personal --

    def non_pii(self, locale: str, n: int) -> dict[str, list]:
        """Columns a real table has beside its PII: words, product codes, plain numbers,
        prices, company names and catch phrases in columns not named for people."""
        f = self.faker(locale)
        return {
            "word": [f.word() for _ in range(n)],
            "status": [f.random_element(("open", "closed", "pending", "shipped")) for _ in range(n)],
            "company": [f.company() for _ in range(n)],
            "company_name": [f.company() for _ in range(n)],
            "product_name": [f.catch_phrase() for _ in range(n)],
            "product_code": [f.bothify("??-####") for _ in range(n)],
            "sku": [f.bothify("SKU-#####-??").upper() for _ in range(n)],
            "ean": [f.ean13() for _ in range(n)],
            "quantity": [f.random_int(0, 500) for _ in range(n)],
            "reference": [str(f.random_number(digits=f.random_int(1, 10))) for _ in range(n)],
            "amount": [str(f.pydecimal(left_digits=6, right_digits=2, positive=True)) for _ in range(n)],
            "price": [f.pricetag() for _ in range(n)],
            "job": [f.job() for _ in range(n)],
            "color": [f.color_name() for _ in range(n)],
            "version": [f.numerify("#.#.#") for _ in range(n)],
            "comment": [f.sentence() for _ in range(n)],
        }

    def shared_non_pii(self, locale: str, n: int) -> dict[str, list]:
        """The first n rows of one `non_pii` sample per locale, made once and grown as asked,
        for the tests that only need such columns: the names model, which costs ~100× a
        regex pass per cell, then reads each of their cells once per session (its memo
        remembers the rest) instead of once per test."""
        have = self._shared_non_pii.get(locale)
        rows = len(have["word"]) if have else 0
        if rows < n:
            more = self.non_pii(locale, n - rows)
            have = {name: (have[name] if have else []) + values for name, values in more.items()}
            self._shared_non_pii[locale] = have
        assert have is not None
        return {name: values[:n] for name, values in have.items()}

    def shared_free_text(self, locale: str, n: int) -> tuple[list[str], list[list[str]]]:
        """The first n cells of one `free_text` sample per locale, made once and grown as
        asked (see `shared_non_pii`)."""
        texts, entities = self._shared_free_text.get(locale, ([], []))
        if len(texts) < n:
            more_texts, more_entities = self.free_text(locale, n - len(texts))
            texts, entities = texts + more_texts, entities + more_entities
            self._shared_free_text[locale] = (texts, entities)
        return texts[:n], entities[:n]

    # -- prose with entities in it --

    def free_text(self, locale: str, n: int) -> tuple[list[str], list[list[str]]]:
        """n cells of prose, each with one to three entities introduced as people write
        them ("Call …", "IBAN: …", "BSN …"), and the entities in each cell."""
        f = self.faker(locale)
        kinds = ["EMAIL", "PHONE", "CREDIT_CARD", "IP_ADDRESS", "MAC_ADDRESS", "URL", "DATE", *NATIONAL_IDS[locale]]
        if locale in IBAN_LOCALES:
            kinds.append("IBAN")
        templates = {
            "EMAIL": "Write to {} if needed.", "PHONE": "Call {} after five.", "CREDIT_CARD": "Card {} was charged.",
            "IBAN": "IBAN: {}.", "IP_ADDRESS": "Logged in from {} today.", "MAC_ADDRESS": "Device MAC {} seen.",
            "URL": "See {} for details.", "DATE": "Born on {}.", "US_SSN": "My SSN is {}.",
            "UK_NINO": "National Insurance number {}.", "DE_IDNR": "Steuer-ID {} liegt vor.",
            "FR_NIR": "Numéro de sécurité sociale {}.", "ES_DNI": "DNI {} verificado.", "ES_NIE": "NIE {} verificado.",
            "IT_CF": "Codice fiscale {}.", "NL_BSN": "BSN {} gecontroleerd.", "CN_RIC": "身份证 {}。",
            "IN_AADHAAR": "Aadhaar {} linked.",
        }
        texts, entities = [], []
        for _ in range(n):
            chosen = [f.random_element(kinds) for _ in range(f.random_int(1, 3))]
            parts, found = [f.sentence()], []
            for kind in chosen:
                if kind == "DATE":
                    d = f.date_of_birth()
                    value = f.random_element((d.isoformat(), d.strftime("%d/%m/%Y"), d.strftime("%d %B %Y")))
                else:
                    value = self.value(kind, locale)
                parts.append(templates[kind].format(value))
                found.append(value)
            order = list(range(len(parts)))
            f.random.shuffle(order)
            texts.append(" ".join(parts[i] for i in order))
            entities.append(found)
        return texts, entities


@pytest.fixture(scope="session")
def pii_faker() -> PiiFaker:
    return PiiFaker()


# Types whose check needs no column name: a checksum or a distinctive shape.
SELF_EVIDENT = ("EMAIL", "CREDIT_CARD", "IBAN", "IP_ADDRESS", "MAC_ADDRESS", "URL", "US_SSN", "UK_NINO",
                "FR_NIR", "ES_DNI", "ES_NIE", "IT_CF", "CN_RIC")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`structured_case` runs a test per (locale, PII type), `self_evident_case` per
    (locale, type in SELF_EVIDENT), `locale` per locale, `address_locale` per locale in
    ADDRESS_LOCALES."""
    for name, cases in (("structured_case", structured_cases()),
                        ("self_evident_case", [c for c in structured_cases() if c[1] in SELF_EVIDENT])):
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, cases, ids=[f"{loc}-{t}" for loc, t in cases])
    if "locale" in metafunc.fixturenames:
        metafunc.parametrize("locale", list(LOCALE_REGIONS))
    if "address_locale" in metafunc.fixturenames:
        metafunc.parametrize("address_locale", list(ADDRESS_LOCALES))

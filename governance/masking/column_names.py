"""What a column's name says about what it holds: its words (`customerEmail`,
`date_of_birth`, `Geburtsdatum`), and the types only a name can vouch for, since their
cells have no checksum: dates of birth, postal codes, person names, street addresses
(their cell shapes are in `column_patterns`). `patterns.column_hints` turns this into
score boosts, together with each recognizer's own column words.
"""

from __future__ import annotations

import re

from privet.governance.masking.entities import PiiType

__all__ = ["column_only_types", "mentions", "name_tokens", "names_a_national_id", "names_a_thing"]

_NATIONAL_ID_WORDS = ("national id", "id number", "identity number", "personal id")
_GENERIC_ID_COLUMNS = ("nationalid", "citizenid", "personalid", "idnumber", "taxid", "tin", "taxnumber",
                       "taxcode", "identitynumber", "idno", "personnummer")
_DOB_WORDS = ("dob", "birth", "born", "geburt", "naissance", "nacimiento", "nascita", "geboorte",
              "出生", "出生日期", "生日")
_POSTAL_WORDS = ("zip", "zipcode", "postcode", "postal", "plz", "postleitzahl", "cap", "cp",
                 "pincode", "pin", "codepostal", "codigopostal", "postcodigo", "cep", "邮编", "邮政编码")
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
    named = mentions(tokens, _ADDRESS_WORDS) or bool(set(tokens) & _ADDRESS_TOKENS)
    if not named or set(tokens) & _NOT_POSTAL:
        return False
    # Run-together names: `emailaddress`, `remoteAddr` (camel case is split already).
    for token in tokens:
        for w in ("address", "addr"):
            if token.endswith(w) and token[:-len(w)] in _NOT_POSTAL:
                return False
    return True


def name_tokens(name: str) -> list[str]:
    """The words of a column name, lower case, camel case split: `customerEmail` -> customer, email."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [t for t in re.split(r"[^0-9A-Za-z\u00C0-\uFFFF]+", spaced.lower()) if t]


def mentions(tokens: list[str], words: tuple[str, ...]) -> bool:
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


def names_a_thing(tokens: list[str]) -> bool:
    """The name says its values name things, not people (`product_name`, `company`): a
    column of them is not read as people's names, whatever a model thinks of its cells."""
    return bool(set(tokens) & _NOT_PERSON)


def names_a_national_id(tokens: list[str]) -> bool:
    """The name says "some national identifier" without saying which."""
    joined = " ".join(tokens)
    return any(w in joined for w in _NATIONAL_ID_WORDS) or mentions(tokens, _GENERIC_ID_COLUMNS)


def column_only_types(tokens: list[str]) -> list[PiiType]:
    """The column-only types the name names, in a fixed order."""
    named: list[PiiType] = []
    if mentions(tokens, _DOB_WORDS):
        named.append(PiiType.DATE_OF_BIRTH)
    if mentions(tokens, _POSTAL_WORDS):
        named.append(PiiType.POSTAL_CODE)
    if _names_a_person(tokens):
        named.append(PiiType.PERSON_NAME)
    if _names_an_address(tokens):
        named.append(PiiType.ADDRESS)
    return named

"""Street addresses inside free text: a street type and a house number together, in the
forms the languages write them:

- a Romance (or Polish) street type before the name, the number after: `Via Roma 10`,
  `Rua das Flores, 123`, `Avenida Paulista, 1578 - Bela Vista`, `Av. Brasil 500`,
  `Calle Mayor 5`, `C/ Mayor 5`, `ul. Marszałkowska 10`;
- the French order, number first: `12 rue de la Paix`, `5 bis avenue des Champs-Élysées`;
- a German or Dutch compound, or a name and a street word, then the number: `Hauptstraße 5`,
  `Hauptstr. 5`, `Berliner Straße 12`, `Prinsengracht 263`;
- the English order: `221B Baker Street`, `1600 Pennsylvania Avenue NW`;
- Japanese and Chinese, one run of characters from the prefecture or province down to the
  block and house number: `東京都千代田区丸の内1-9-1`, `大阪府大阪市北区梅田3丁目1番1号`,
  `北京市朝阳区建国路88号`.

A street type without a number (`via email`, `on Main Street`, `Street Fighter 2`) is not
an address. The English order is also how many other things are written ("3 Apple Way"
in a product list), so alone it scores below the detection threshold: a keyword ("lives
at", "address") or a column named for addresses lifts it; so does an English word used as a
Romance street type (`via DHL 2`, `Plaza Suite 148`).

Every pattern here is RE2 and Python `re.ASCII` alike: no `\\p{L}`, non-ASCII letters as
literal ranges, and the street words spelled in each case rather than under `(?i)`.
"""

from __future__ import annotations

import re

__all__ = ["ADDRESS_TEXT_PATTERN", "BR_CEP_PATTERN", "validate_address", "validate_br_cep"]

_UPPER = "A-ZÀ-ÖØ-ÞĀ-ž"
_LETTER = "A-Za-zÀ-ÖØ-öø-ɏ"
_NAME = rf"[{_UPPER}][{_LETTER}'’\-]*"
_HOUSE = r"[0-9]{1,4}[A-Za-z]?(?:[\-/][0-9]{1,4}[A-Za-z]?)?\b"
# The flat after the house number: "Calle Mayor 5, Piso 3", "Via Roma 10 Appartamento 6".
_UNIT = (r"(?:,? (?:Piso|Puerta|Apt\.|Apto\.?|Apartamento|Bloco|Andar|Sala|Appartamento|Piano|Interno|Scala)"
         r" [0-9]{1,4}[A-Za-z]?\b)?")
_PARTICLES = ("de", "da", "do", "das", "dos", "del", "della", "delle", "dello", "dei", "degli", "di",
              "la", "le", "les", "du", "des", "los", "las", "el", "e", "y", "der", "den")
_LINK = r"(?:(?:" + "|".join(_PARTICLES) + r") |[dlDL]['’])*"
_STREET_NAME = rf"{_LINK}{_NAME}(?: {_LINK}{_NAME}){{0,3}}"


def _cases(words: tuple[str, ...]) -> str:
    spellings = {s for w in words for s in (w, w.capitalize(), w.upper())}
    return "(?:" + "|".join(sorted(spellings, key=lambda s: (-len(s), s))) + ")"


# Written before the name (pt, es, it, pl). Not "place", "route", "square": English words.
_PREFIX_TYPES = (
    # pt
    "rua", "avenida", "av", "avda", "travessa", "alameda", "estrada", "rodovia", "praça", "praca", "largo",
    # es (and ca)
    "calle", "paseo", "plaza", "camino", "carretera", "ronda", "rambla", "carrera", "pasaje", "pasadizo",
    "callejón", "callejon", "cuesta", "travesía", "travesia", "glorieta", "vial", "bulevar", "urbanización",
    "urbanizacion", "carrer", "avinguda",
    # it
    "via", "viale", "piazza", "piazzale", "corso", "vicolo", "borgo", "contrada", "strada", "vico", "salita",
    "lungomare", "lungotevere", "traversa", "rotonda", "canale", "stretto",
    # pl
    "ul", "ulica", "aleja",
)
# Written after the number, before the name (fr).
_FRENCH_TYPES = ("rue", "avenue", "boulevard", "bd", "place", "allée", "allee", "impasse", "chemin", "quai",
                 "cours", "passage", "square", "route")
# The end of a German or Dutch compound ("Hauptstraße", "Prinsengracht"); the few that end
# ordinary words ("ring": Spring, During; "park") are left out. Hyphenated names capitalise
# the street word: "Sabina-Franke-Gasse".
_COMPOUND_ENDS = ("straße", "strasse", "str.", "gasse", "platz", "allee", "weg", "damm", "ufer", "straat",
                  "laan", "gracht", "singel", "plein", "steeg", "kade", "dijk", "dreef", "baan", "hof",
                  "boulevard")
_GERMAN_WORDS = ("Straße", "Strasse", "Str.", "Weg", "Platz", "Allee", "Gasse", "Damm", "Ufer")
_ENGLISH_TYPES = ("Street", "St", "Road", "Rd", "Avenue", "Ave", "Lane", "Ln", "Drive", "Dr", "Boulevard",
                  "Blvd", "Court", "Ct", "Place", "Pl", "Way", "Terrace", "Close", "Crescent", "Parkway",
                  "Pkwy", "Highway", "Hwy", "Square", "Sq")

_PREFIXED = (rf"\b(?:[Cc]/ ?|{_cases(_PREFIX_TYPES)}\.? ){_STREET_NAME},? (?:n[º°o]\.? ?)?{_HOUSE}{_UNIT}"
             rf"(?: - {_NAME}(?: {_LINK}{_NAME}){{0,2}})?")
_FRENCH = (rf"\b[0-9]{{1,4}}(?: ?(?:bis|ter))?,? (?:{'|'.join(_FRENCH_TYPES)}|Rue|Avenue|Boulevard|Place|Allée"
           rf"|Impasse|Chemin|Quai) {_STREET_NAME}")
_COMPOUND = (rf"[{_UPPER}][{_LETTER}\-]*(?:{'|'.join(re.escape(e) for e in _COMPOUND_ENDS)}"
             rf"|-(?:{'|'.join(re.escape(e.capitalize()) for e in _COMPOUND_ENDS)})) {_HOUSE}"
             rf"|{_NAME} (?:{'|'.join(re.escape(w) for w in _GERMAN_WORDS)}) {_HOUSE}")
_ENGLISH = (rf"\b[0-9]{{1,5}}[A-Za-z]? (?:{_NAME} ){{1,3}}(?:{'|'.join(_ENGLISH_TYPES)})\b\.?"
            r"(?: (?:NW|NE|SW|SE|N|S|E|W)\b)?")

# The CJK forms, from the prefecture (ja) or the province or a large city (zh).
_JA_PREFECTURES = (
    "北海道|東京都|京都府|大阪府|(?:青森|岩手|宮城|秋田|山形|福島|茨城|栃木|群馬|埼玉|千葉|神奈川|新潟|富山|石川|福井|山梨"
    "|長野|岐阜|静岡|愛知|三重|滋賀|兵庫|奈良|和歌山|鳥取|島根|岡山|広島|山口|徳島|香川|愛媛|高知|福岡|佐賀|長崎|熊本"
    "|大分|宮崎|鹿児島|沖縄)県"
)
_KANA_KANJI = "一-鿿ぁ-んァ-ヶー々"
_DIGIT = "[0-9０-９]"
_JA_BLOCK = (rf"{_DIGIT}{{1,4}}(?:丁目(?:{_DIGIT}{{1,4}}(?:番地?|[\-－])(?:{_DIGIT}{{1,4}}号?)?)?"
             rf"|番地?(?:{_DIGIT}{{1,4}}号?)?|[\-－]{_DIGIT}{{1,4}}(?:[\-－]{_DIGIT}{{1,4}})?)")
_JAPANESE = rf"(?:{_JA_PREFECTURES})(?:[{_KANA_KANJI}]{{1,8}}?[市区町村郡])+[{_KANA_KANJI}]{{0,10}}?{_JA_BLOCK}"
_ZH_PROVINCES = (
    "(?:北京|天津|上海|重庆)市?|(?:河北|山西|辽宁|吉林|黑龙江|江苏|浙江|安徽|福建|江西|山东|河南|湖北|湖南|广东|海南|四川|贵州"
    "|云南|陕西|甘肃|青海|台湾)省?|(?:内蒙古|广西壮族|西藏|宁夏回族|新疆维吾尔|广西|宁夏|新疆)自治区"
    "|(?:广州|深圳|杭州|南京|成都|武汉|西安|苏州|青岛|大连|厦门|宁波|沈阳|长沙|郑州|济南|哈尔滨|长春|昆明|合肥|福州"
    "|石家庄|太原|南昌|南宁|贵阳|兰州|海口|东莞|佛山|无锡)市"
)
# The street's number (88号), or a building (Z座, 3栋, 5号楼) where the number is not given.
_ZH_NUMBER = rf"(?:{_DIGIT}{{1,5}}(?:[号號]|号楼|栋|幢)|[A-Za-z0-9]{{1,3}}座)"
_CHINESE = (rf"(?:(?:{_ZH_PROVINCES})(?:[一-鿿]{{1,8}}?(?:市|区|县|旗|镇|乡|街道))*"
            # or a city or county of any name, then a street: 华市乌鲁木齐街285号
            rf"|[一-鿿]{{1,2}}?(?:市|县|区))"
            rf"[一-鿿]{{1,12}}?(?:大道|大街|路|街|道|巷|弄|胡同){_ZH_NUMBER}")

_FORMS = (
    (re.compile(_JAPANESE + "|" + _CHINESE, re.ASCII), 0.9),
    (re.compile(_PREFIXED, re.ASCII), 0.6),
    (re.compile(_FRENCH, re.ASCII), 0.6),
    (re.compile(_COMPOUND, re.ASCII), 0.6),
    (re.compile(_ENGLISH, re.ASCII), 0.45),
)
ADDRESS_TEXT_PATTERN = "|".join(f"(?:{form.pattern})" for form, _ in _FORMS)
# Street types that are English words too, when no Romance particle follows: "via" (after
# one even `scan` wants a keyword) and "Plaza" ("Brandt Plaza Suite 148" is the English order).
_ENGLISH_VIA = re.compile(r"^via [A-Z]")
_ENGLISH_PLAZA = re.compile(r"^(?:plaza|Plaza|PLAZA) [A-Z]")


def validate_address(text: str) -> float | None:
    """How likely the matched `text` is a street address, by the form it is written in."""
    for form, score in _FORMS:
        if form.fullmatch(text):
            if _ENGLISH_VIA.match(text):
                return 0.35
            return 0.45 if _ENGLISH_PLAZA.match(text) else score
    return None


# A Brazilian CEP, 01310-100. Five digits, a dash and three are as often a reference or a
# range, so a CEP counts beside its keyword or in a column named `cep`.
BR_CEP_PATTERN = r"\b[0-9]{5}-[0-9]{3}\b"


def validate_br_cep(text: str) -> float | None:
    return 0.3 if text[:5] != "00000" else None

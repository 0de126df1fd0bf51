"""The cell shapes of the types believed only when a column's name says so (postal
codes, person names, street addresses; see `column_names`), and the date formats
strings are read in. Neither a postcode nor a name nor an address has a checksum, so a
cell of one of these shapes is evidence only in a column named for it.

Every pattern is RE2 (what `pyarrow.compute` runs over whole columns).
"""

from __future__ import annotations

__all__ = [
    "ADDRESS_NUMBER_PATTERN",
    "ADDRESS_PREFIX_PATTERN",
    "ADDRESS_SHAPE_PATTERN",
    "ADDRESS_STREET_PATTERN",
    "DATE_FORMATS",
    "PERSON_NAME_PATTERN",
    "POSTAL_CODE_PATTERN",
]


# Postcode shapes: US ZIP(+4), Brazilian CEP, UK, Dutch, Canadian, Japanese, Polish, and 3-7
# digit codes.
POSTAL_CODE_PATTERN = (
    r"^\s*(?:[0-9]{5}(?:-[0-9]{4}|-[0-9]{3})?|[0-9]{3,7}|[0-9]{4} ?[A-Za-z]{2}"
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

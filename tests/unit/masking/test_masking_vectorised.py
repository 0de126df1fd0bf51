"""The vectorised phone and IBAN validators agree with the Python ones they stand in for.

A decided score must be exactly what `validators.validate_phone` / `validate_iban` says;
NaN (undecided) is always allowed, but most real inputs must be decided, or the fast path
would quietly stop paying for itself."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from faker import Faker
from hypothesis import given, settings
from hypothesis import strategies as st

from privet.governance.masking import validators as v
from privet.governance.masking.strings import (
    byte_set,
    count_bytes,
    digits_only,
    drop_bytes,
    only_bytes,
    slice_bytes,
    translate_bytes,
)
from privet.governance.masking.vectorised import REJECTED, iban_scores, phone_scores

_PHONE_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "en_IN", "zh_CN", "pt_BR",
                  "en_AU", "en_CA", "ja_JP", "pl_PL")
_IBAN_LOCALES = ("en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "no_NO", "nl_BE", "pt_PT")


def _mutate(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(2):
        i = rng.randrange(len(chars))
        if chars[i].isdigit():
            chars[i] = str(rng.randrange(10))
    return "".join(chars)


def _from_faker(locales: tuple[str, ...], make, count: int, rng: random.Random) -> list[str]:  # type: ignore[no-untyped-def]
    """`count` values a locale from `make(fake)`, each followed by a copy with digits changed."""
    values = []
    for locale in locales:
        fake = Faker(locale)
        fake.seed_instance(5)
        for _ in range(count):
            value = make(fake)
            values += [value, _mutate(value, rng)]
    return values


@pytest.fixture(scope="module")
def phone_texts() -> list[str]:
    rng = random.Random(11)
    texts = _from_faker(_PHONE_LOCALES, lambda fake: fake.phone_number(), 120, rng)
    for _ in range(1500):  # phone-shaped noise: digits, separators, '+', '00', '(…)', extensions
        digits = "".join(str(rng.randrange(10)) for _ in range(rng.randint(5, 16)))
        text = "".join(ch + (rng.choice(" -./") if rng.random() < 0.2 else "") for ch in digits).strip(" -./")
        text = rng.choice(["+" + text, "(" + text[:3] + ") " + text[3:], "00" + text, text + " x12", text, text])
        texts.append(text)
    return texts + ["", "12", "2024-01-31", "1,234.50", "+", "+0 123 456 789", "(555) 123-4567 ext. 89"]


def _agree(texts: list[str], got: np.ndarray, want: list[float | None]) -> tuple[int, list[str]]:
    decided, wrong = 0, []
    for text, g, w in zip(texts, got.tolist(), want):
        if g != g:
            continue
        decided += 1
        if (None if g == REJECTED else g) != w:
            wrong.append(f"{text!r}: vectorised {g}, python {w}")
    return decided, wrong


@pytest.mark.parametrize("region", ["US", "GB", "DE", "FR", "IN", "CA", "AU", "BR", "JP"])
def test_phone_scores_match_validate_phone(phone_texts: list[str], region: str) -> None:
    got = phone_scores(phone_texts, region)
    decided, wrong = _agree(phone_texts, got, [v.validate_phone(t, region) for t in phone_texts])
    assert not wrong, wrong[:5]
    # Regions whose trunk prefix has a transform rule (BR, JP) decide only international
    # and rejected inputs; the rest decide what their own plan holds, and leave a formatted
    # number it does not to the validator, which tries the other regions' plans.
    assert decided >= len(phone_texts) * (0.3 if region in ("BR", "JP") else 0.5)


def test_phone_scores_accept_an_arrow_array_and_an_unknown_region() -> None:
    import pyarrow as pa

    assert phone_scores(pa.array(["(202) 555-0143"]), "US").tolist() == [v.validate_phone("(202) 555-0143", "US")]
    assert np.isnan(phone_scores(["(202) 555-0143"], "ZZ")).all()


def test_iban_scores_match_validate_iban() -> None:
    ibans = _from_faker(_IBAN_LOCALES, lambda fake: fake.iban(), 100, random.Random(12))
    texts = ibans + [" ".join(i[k:k + 4] for k in range(0, len(i), 4)) for i in ibans[::2]] + [i.lower() for i in ibans[::2]]
    texts += ["XX12345678901234", "GB00", "GB29 NWBK 6016 1331 9268 19", "GB29-NWBK-6016-1331-9268-19", "ÄB29NWBK"]
    got = iban_scores(texts)
    decided, wrong = _agree(texts, got, [v.validate_iban(t) for t in texts])
    assert not wrong, wrong[:5]
    assert decided >= len(texts) * 0.6  # BE, ES and NO are checked further by stdnum itself


def test_replace_entities_fast_path_matches_the_general_path() -> None:
    """Texts with one match of one recognizer are rewritten in pyarrow; the result must be
    what finding and substituting text by text gives."""
    fake = Faker("en_US")
    fake.seed_instance(9)
    rng = random.Random(13)
    uk, de = Faker("en_GB"), Faker("de_DE")
    templates = [
        lambda: f"Call {fake.phone_number()} today.",
        lambda: f"Ring me on {uk.phone_number()} or {fake.phone_number()}.",
        lambda: f"IBAN {de.iban()} please",
        lambda: f"Account {' '.join(de.iban()[i:i + 4] for i in range(0, 22, 4))} FOR rent",
        lambda: f"card {fake.credit_card_number()} expires soon",
        lambda: f"ssn {fake.ssn()} on file",
        lambda: f"number {rng.randint(100000000, 999999999)} without context",
        lambda: f"tel 0151 496 0489 12 times, born {fake.date_of_birth().isoformat()}",
        lambda: f"order {rng.randint(1000, 99999)} shipped to {fake.postcode()}",
        lambda: "nothing to see here",
    ]
    texts = [rng.choice(templates)() for _ in range(1500)]
    fast, slow, distinct = _fast_and_slow(texts)
    assert fast == slow
    assert sum(a != b for a, b in zip(fast, distinct)) > len(fast) // 2  # it did replace things


def _fast_and_slow(texts: list[str]) -> tuple[list[str], list[str], list[str]]:
    from privet.governance.masking._batch_finder import BatchFinder
    from privet.governance.masking.entities import TEXT_TYPES
    from privet.governance.masking.finding import Finder, substitute
    from privet.governance.masking.free_text import SCAN_MIN_SCORE
    from privet.governance.masking.patterns import RECOGNIZERS

    recs = tuple(r for r in RECOGNIZERS if r.type in TEXT_TYPES and not r.exact)
    distinct = pa.array(sorted(set(texts)))
    fast = BatchFinder(recs, "US", SCAN_MIN_SCORE).replace(distinct, None).to_pylist()
    found = BatchFinder(recs, "US", SCAN_MIN_SCORE).find(distinct)
    # The reference: the rules one string at a time, with no batch machinery at all.
    rules = Finder(recs, "US", SCAN_MIN_SCORE)
    assert found == [rules.find_in(t, recs) for t in distinct.to_pylist()]
    slow = [substitute(t, f, None) if f else t for t, f in zip(distinct.to_pylist(), found)]
    return fast, slow, distinct.to_pylist()


def test_a_recognizer_the_sample_missed_still_finds_its_few_matches() -> None:
    # Past a few thousand candidates, recognizers that match nothing in an even sample are
    # tried together first; a card and an SSN off the sampled positions must still be found.
    from privet.governance.masking._batch_finder import MASK_SAMPLE

    fake = Faker("en_US")
    fake.seed_instance(3)
    texts = [f"Call {fake.phone_number()} ref {i}" for i in range(5 * MASK_SAMPLE)]
    texts += ["card 4111 1111 1111 1111 expires soon", "ssn 123-45-6789 on file", "zzz nothing"]
    fast, slow, distinct = _fast_and_slow(texts)
    sampled = set(np.linspace(0, len(distinct) - 1, MASK_SAMPLE).astype(np.int64).tolist())
    assert not sampled & {distinct.index(texts[-3]), distinct.index(texts[-2])}  # both off the sample
    assert fast == slow
    changed = {t: f for t, f in zip(distinct, fast)}
    assert changed["card 4111 1111 1111 1111 expires soon"] == "card <CREDIT_CARD> expires soon"
    assert changed["ssn 123-45-6789 on file"] == "ssn <US_SSN> on file"


@given(st.lists(st.one_of(st.none(), st.text(max_size=12)), max_size=30), st.integers(0, 5))
@settings(max_examples=300, deadline=None)
def test_digits_only_is_the_regex_it_replaces(values: list[str | None], cut: int) -> None:
    arr = pa.array(values, type=pa.string())
    for view in (arr, arr.slice(min(cut, len(arr))), pa.chunked_array([arr, arr.slice(min(cut, len(arr)))])):
        assert digits_only(view).to_pylist() == pc.replace_substring_regex(view, r"[^0-9]", "").to_pylist()


_ASCII_CLASSES = st.sampled_from([" -./", " -", "\t\n\f\r -.", "0123456789", "x(+"])


@given(st.lists(st.text(max_size=12), max_size=30), _ASCII_CLASSES, st.integers(0, 5))
@settings(max_examples=300, deadline=None)
def test_byte_class_helpers_are_the_regexes_they_replace(values: list[str], chars: str, cut: int) -> None:
    table = byte_set(chars)
    cls = "[" + "".join(f"\\x{ord(c):02x}" for c in chars) + "]"
    for view in (pa.array(values, type=pa.string()), pa.array(values, type=pa.string()).slice(min(cut, len(values)))):
        assert count_bytes(view, table).tolist() == pc.count_substring_regex(view, cls).to_pylist()
        assert only_bytes(view, table).tolist() == pc.match_substring_regex(view, f"^{cls}*$").to_pylist()
        assert drop_bytes(view, table).to_pylist() == pc.replace_substring_regex(view, cls, "").to_pylist()
        mapped = np.arange(256, dtype=np.uint8)
        mapped[table] = ord("x")
        assert translate_bytes(view, mapped).to_pylist() == pc.replace_substring_regex(view, cls, "x").to_pylist()


@given(st.lists(st.text(max_size=12), min_size=1, max_size=30), st.data())
@settings(max_examples=300, deadline=None)
def test_slice_bytes_cuts_on_the_byte_offsets_given(values: list[str], data: st.DataObject) -> None:
    encoded = [v.encode() for v in values]
    bounds = [sorted(data.draw(st.lists(st.sampled_from([i for i in range(len(b) + 1)
                                                          if i == len(b) or (b[i] & 0xC0) != 0x80]),
                                        min_size=2, max_size=2))) for b in encoded]
    starts, ends = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])
    got = slice_bytes(pa.array(values, type=pa.string()), starts, ends).to_pylist()
    assert got == [b[s:e].decode() for b, s, e in zip(encoded, starts, ends)]


def test_first_match_splits_each_text_around_its_first_match() -> None:
    from privet.governance.masking._column_regex import first_match

    texts = pa.array(["call +1 555 123 4567 now", "é 555-123-4567 and 555-999-0000", "555-123-4567", "ü\n1234567"])
    pre, matched, post = first_match(texts, r"[0-9][0-9 \-]{5,}[0-9]")
    assert pre.to_pylist() == ["call +", "é ", "", "ü\n"]
    assert matched.to_pylist() == ["1 555 123 4567", "555-123-4567", "555-123-4567", "1234567"]
    assert post.to_pylist() == [" now", " and 555-999-0000", "", ""]

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

from governance.masking import validators as v
from governance.masking.strings import digits_only
from governance.masking.vectorised import REJECTED, iban_scores, phone_scores

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
    # and rejected inputs; the rest decide nearly everything.
    assert decided >= len(phone_texts) * (0.3 if region in ("BR", "JP") else 0.9)


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
    import pyarrow as pa

    from governance.masking import detect

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
    recs = tuple(r for r in detect.RECOGNIZERS if r.type in detect.TEXT_TYPES and not r.exact)
    finder = detect._Finder(recs, "US", detect.SCAN_MIN_SCORE)
    distinct = pa.array(sorted(set(texts)))
    fast = finder.replace(distinct, None).to_pylist()
    found = detect._Finder(recs, "US", detect.SCAN_MIN_SCORE).find(distinct)
    slow = [detect._substitute(t, f, None) if f else t for t, f in zip(distinct.to_pylist(), found)]
    assert fast == slow
    assert sum(a != b for a, b in zip(fast, distinct.to_pylist())) > len(fast) // 2  # it did replace things


@given(st.lists(st.one_of(st.none(), st.text(max_size=12)), max_size=30), st.integers(0, 5))
@settings(max_examples=300, deadline=None)
def test_digits_only_is_the_regex_it_replaces(values: list[str | None], cut: int) -> None:
    arr = pa.array(values, type=pa.string())
    for view in (arr, arr.slice(min(cut, len(arr))), pa.chunked_array([arr, arr.slice(min(cut, len(arr)))])):
        assert digits_only(view).to_pylist() == pc.replace_substring_regex(view, r"[^0-9]", "").to_pylist()

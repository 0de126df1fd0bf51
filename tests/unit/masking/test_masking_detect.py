"""Detectors: recall on Faker data in nine locales, false positives on data that is not
personal, spans and overlaps in free text."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from privet.governance.errors import InvalidArgument
from privet.governance.masking import PiiType, classify_column, replace_entities, scan_text

RECALL_CELLS = 300


def test_structured_recall(pii_faker, structured_case):
    """≥ 99% of generated values validate as their type in a column named for it."""
    locale, pii_type = structured_case
    values = pii_faker.values(pii_type, locale, RECALL_CELLS)
    name = pii_faker.column_name(pii_type, locale)
    result = classify_column(name, pa.array(values), sample=RECALL_CELLS,
                             default_region=pii_faker.regions[locale])
    recall = result.shares.get(PiiType(pii_type), 0.0)
    assert recall >= 0.99, (name, recall, result)
    assert result.pii_type is PiiType(pii_type)


def test_recall_without_a_telling_column_name(pii_faker, self_evident_case):
    """Types with a checksum or a distinctive shape are found in a column named `field_7`."""
    locale, pii_type = self_evident_case
    values = pii_faker.values(pii_type, locale, 200)
    if pii_type == "CREDIT_CARD":  # bare 12/13-digit numbers (Maestro, old Visa) need context
        values = [v for v in values if len(v) > 13]
    result = classify_column("field_7", pa.array(values), sample=200, default_region=pii_faker.regions[locale])
    assert result.shares.get(PiiType(pii_type), 0.0) >= 0.99
    assert result.pii_type is PiiType(pii_type)


def test_non_pii_columns_are_not_flagged(pii_faker, locale):
    """No non-personal column is classified as PII, and ≤ 1% of its cells validate as
    any type, structured or as free text. (Company names built of surnames, "Smith, Jones
    and Lee", do read as people in text with no column around them; their column's name
    keeps them, which the classification checks, so they are not counted as text.)"""
    region = pii_faker.regions[locale]
    flagged_cells = total_cells = 0
    for name, values in pii_faker.shared_non_pii(locale, 600).items():
        column = pa.array(values)
        result = classify_column(name, column, default_region=region, full_scan=True)
        if (locale, name) == ("de_DE", "comment"):
            # Known limit (docs/masking.md): capitalised German nouns read as names in ~4 % of
            # Faker's word-salad sentences; no other type, and no more than that.
            assert set(result.shares) <= {PiiType.PERSON_NAME} and max(result.shares.values(), default=0.0) <= 0.05
            continue
        assert not result.is_pii, (locale, name, result)
        assert max(result.shares.values(), default=0.0) <= 0.01, (locale, name, result.shares)
        if name.startswith("company"):
            continue
        findings = scan_text(column, default_region=region)
        flagged_cells += sum(1 for f in findings if f)
        total_cells += len(values)
    assert flagged_cells / total_cells <= 0.01


def test_free_text_column_is_classified_and_every_entity_found(pii_faker, locale):
    texts, entities = pii_faker.shared_free_text(locale, 150)
    region = pii_faker.regions[locale]
    result = classify_column("notes", pa.array(texts), default_region=region)
    assert result.kind == "free_text" and result.pii_type is PiiType.FREE_TEXT
    found = scan_text(pa.array(texts), default_region=region, min_score=0.4)
    missed = []
    for text, cell, expected in zip(texts, found, entities):
        spans = [text[f.start:f.end] for f in cell]
        for value in expected:
            if not any(value in s or s in value and len(s) >= len(value) - 2 for s in spans):
                missed.append((value, text))
    assert len(missed) <= 0.01 * sum(len(e) for e in entities), missed[:5]


def test_findings_have_types_scores_and_spans():
    text = "Mail a.b@example.org, call +44 20 7946 0958, IBAN GB82 WEST 1234 5698 7654 32 please."
    [cell] = scan_text(pa.array([text]), default_region="GB")
    assert [(f.type, text[f.start:f.end]) for f in cell] == [
        (PiiType.EMAIL, "a.b@example.org"),
        (PiiType.PHONE, "+44 20 7946 0958"),
        (PiiType.IBAN, "GB82 WEST 1234 5698 7654 32"),
    ]
    assert all(0.5 <= f.score <= 1 for f in cell)


def test_greedy_matches_are_trimmed_to_the_valid_entity():
    text = "card 4111 1111 1111 1111 2 times, IBAN GB82WEST12345698765432 FOR rent"
    [cell] = scan_text(pa.array([text]))
    spans = {f.type: text[f.start:f.end] for f in cell}
    assert spans[PiiType.CREDIT_CARD] == "4111 1111 1111 1111"
    assert spans[PiiType.IBAN] == "GB82WEST12345698765432"


def test_context_words_lift_checksum_only_ids():
    bare, named = scan_text(pa.array(["ref 111222333 ok", "BSN 111222333 ok"]))
    assert bare == []  # passes the 11-proof, but so does one 9-digit number in eleven
    assert [f.type for f in named] == [PiiType.NL_BSN]


def test_nulls_and_plain_text_have_no_findings():
    assert scan_text(pa.array([None, "", "nothing to see"])) == [[], [], []]


def test_replace_entities_tokens_and_pseudonyms():
    column = pa.chunked_array([["a@x.io wrote", None], ["a@x.io and b@y.io", "call +1 415 555 2671"]])
    tokens = replace_entities(column)
    assert tokens.to_pylist() == ["<EMAIL> wrote", None, "<EMAIL> and <EMAIL>", "call <PHONE>"]
    pseudo = replace_entities(column, replace="pseudonym", key=b"k" * 32).to_pylist()
    first = pseudo[0].split()[0]
    assert first.startswith("<EMAIL_") and pseudo[2].split()[0] == first  # same entity, same token
    assert pseudo[2].split()[2] != first
    other_key = replace_entities(column, replace="pseudonym", key=b"j" * 32).to_pylist()
    assert other_key[0] != pseudo[0]


def test_replace_entities_rejects_bad_arguments():
    with pytest.raises(InvalidArgument) as err:
        replace_entities(pa.array(["x"]), replace="pseudonym")
    assert err.value.field == "key"
    with pytest.raises(InvalidArgument) as err:
        replace_entities(pa.array([1.5]))
    assert err.value.field == "values"
    with pytest.raises(InvalidArgument) as err:
        scan_text(pa.array(["x"]), types=["EMAIL", "SHOE_SIZE"])
    assert err.value.field == "types"


def test_only_candidates_reach_python(monkeypatch):
    """The validators run once per distinct candidate, never on cells no pattern matched."""
    import dataclasses

    from privet.governance.masking import free_text

    calls = []
    email = next(r for r in free_text.RECOGNIZERS if r.type is PiiType.EMAIL)

    def counting(text, region):
        calls.append(text)
        return email.validate(text, region)

    spy = dataclasses.replace(email, validate=counting)
    monkeypatch.setattr(free_text, "RECOGNIZERS", tuple(spy if r is email else r for r in free_text.RECOGNIZERS))
    column = pa.array(["plain words"] * 1000 + ["mail x@y.org now"] * 500 + ["z@q.net"] * 2)
    scan_text(column, types=["EMAIL"])
    assert sorted(calls) == ["x@y.org", "z@q.net"]


def test_sparse_distinctive_pii_in_a_code_column_is_caught():
    values = [f"SKU-{i:05d}" for i in range(20_000)]
    values[12_345] = "jane.doe@example.com"
    sampled = classify_column("sku", pa.array(values), sample=500)
    assert not sampled.is_pii  # the sample missed it
    scanned = classify_column("sku", pa.array(values), sample=500, full_scan=True)
    assert scanned.pii_type is PiiType.FREE_TEXT and PiiType.EMAIL in scanned.found


def test_column_kinds():
    assert classify_column("x", pa.array([None, None], pa.string())).kind == "empty"
    assert classify_column("price", pa.array([1.5, 2.0])).kind == "not_text"
    assert classify_column("blob", pa.array([b"\x00\x01"])).kind == "opaque"
    assert classify_column("tags", pa.array([["a"]])).kind == "opaque"
    dob = classify_column("birth_date", pa.array([dt.date(1980, 1, 2), dt.date(1991, 5, 6)]))
    assert dob.pii_type is PiiType.DATE_OF_BIRTH
    assert classify_column("shipped_on", pa.array([dt.date(2021, 1, 2)])).kind == "not_text"
    ssn_ints = classify_column("ssn", pa.array([123456789, 234567890, 345678901]))
    assert ssn_ints.pii_type is PiiType.US_SSN


@pytest.mark.parametrize(("name", "expected"), [
    ("product_name", None), ("productName", None), ("company_name", None), ("first_name", PiiType.PERSON_NAME),
    ("customerName", PiiType.PERSON_NAME), ("Nachname", PiiType.PERSON_NAME),
])
def test_name_columns(name, expected):
    values = pa.array(["Ada Lovelace", "Jürgen Müller-Lüdenscheidt", "Marie de la Tour", "O'Brien, Sean"] * 5)
    assert classify_column(name, values).pii_type is expected


ADDRESS_RECALL_CELLS = 2000


def test_street_address_recall(pii_faker, address_locale):
    """≥ 99% of Faker's `street_address()` values, in each locale whose conventions the
    detector knows, are addresses in a column named `address`."""
    values = pii_faker.values("ADDRESS", address_locale, ADDRESS_RECALL_CELLS)
    result = classify_column("address", pa.array(values), sample=ADDRESS_RECALL_CELLS)
    assert result.pii_type is PiiType.ADDRESS, result
    assert result.shares[PiiType.ADDRESS] >= 0.99, result.shares


def test_non_pii_values_in_an_address_column_are_not_addresses(pii_faker, address_locale):
    """The shape, not only the column's name, decides: words, codes, prices, company names
    and sentences put in an `address` column are not classified as addresses, and ≤ 1%
    of their cells look like one."""
    for name, values in pii_faker.shared_non_pii(address_locale, 400).items():
        result = classify_column("address", pa.array([str(v) for v in values]), sample=400)
        assert result.pii_type is not PiiType.ADDRESS, (name, result)
        assert result.shares.get(PiiType.ADDRESS, 0.0) <= 0.01, (name, result.shares)


def test_addresses_are_found_whatever_the_column_is_called(pii_faker):
    # Issue 22: a column of street addresses under a header that says nothing is no longer
    # kept; found as addresses in text, they are masked by the scan.
    values = pa.array(pii_faker.values("ADDRESS", "en_US", 200))
    assert PiiType.ADDRESS in classify_column("location_notes", values).found
    assert classify_column("billing_address", values).pii_type is PiiType.ADDRESS


@pytest.mark.parametrize(("name", "expected"), [
    ("address", True), ("street_address", True), ("billingAddress", True), ("addr", True), ("Straße", True),
    ("adresse", True), ("calle", True), ("via", True), ("indirizzo", True), ("ip_address", False),
    ("email_address", False), ("emailAddress", False), ("mac_address", False), ("remoteAddr", False),
    ("wallet_address", False), ("caller_id", False),
])
def test_address_column_names(name, expected):
    from privet.governance.masking.patterns import column_hints
    assert (PiiType.ADDRESS in column_hints(name)) is expected


@pytest.mark.parametrize("value", [
    "221B Baker Street", "Flat 3, 12 High St", "1600 Pennsylvania Avenue NW", "Am Markt 5",
    "SCHAAFSTRASSE 1", "rue d'Alésia", "12 rue de la paix", "C/ Mayor 5", "Via dei Mille 3",
    "Prinsengracht 263",
])
def test_address_shapes_beyond_faker(value):
    assert classify_column("address", pa.array([value])).pii_type is PiiType.ADDRESS


@pytest.mark.parametrize("value", [
    "Virtual 24/7 monitoring", "SKU-83251-ST", "Paris", "jane@example.com", "Call me at 5",
    "Place etc selon couper sauvage.", "+44 20 7946 0958",
])
def test_not_addresses(value):
    assert classify_column("address", pa.array([value])).pii_type is not PiiType.ADDRESS

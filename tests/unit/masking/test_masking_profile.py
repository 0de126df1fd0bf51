"""Profiles: loading and its errors, the safety net, and the guarantee that after the
default profile no personal value is left anywhere in the table."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pyarrow as pa
import pytest

from privet.governance.errors import FailedPrecondition, InvalidArgument
from privet.governance.masking import (
    MaskingKeys,
    PiiType,
    apply_profile,
    detokenise,
    is_k_anonymous,
    load_profile,
    parse_profile,
    plan_masking,
    preview,
)

POLICIES = Path(__file__).resolve().parents[3] / "policies" / "masking"
KEYS = MaskingKeys.derive(b"test-secret-of-32-bytes-at-least!", key_id="test/v1")


@pytest.fixture(scope="module")
def default_profile():
    return load_profile(POLICIES / "default.yaml")


def test_shipped_profiles_load_and_default_covers_every_type(default_profile):
    covered = {r.pii_type for r in default_profile.rules if r.pii_type is not None}
    assert covered == set(PiiType)
    strict = load_profile(POLICIES / "strict.yaml")
    assert strict.domain == "research" and strict.default_region == "GB"
    assert {r.pii_type for r in strict.rules if r.pii_type is not None} == set(PiiType)


def _pii_table(pii_faker, locale: str, n: int) -> tuple[pa.Table, dict[str, list[str]], list[str]]:
    columns: dict[str, list] = {"row": list(range(n))}
    pii_columns: dict[str, list[str]] = {}
    for loc, pii_type in [c for c in _cases(pii_faker) if c[0] == locale]:
        name = pii_faker.column_name(pii_type, loc)
        pii_columns[name] = columns[name] = pii_faker.values(pii_type, loc, n)
    notes, entities = pii_faker.shared_free_text(locale, n)
    columns["notes"] = notes
    columns.update(pii_faker.shared_non_pii(locale, n))
    return pa.table(columns), pii_columns, [e for cell in entities for e in cell]


def _cases(pii_faker):
    from itertools import chain
    common = ("EMAIL", "PHONE", "CREDIT_CARD", "IP_ADDRESS", "MAC_ADDRESS", "URL", "DATE_OF_BIRTH",
              "POSTAL_CODE", "PERSON_NAME")
    return list(chain(((loc, t) for loc in pii_faker.regions for t in common),
                      ((loc, "IBAN") for loc in ("en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL")),
                      ((loc, "ADDRESS") for loc in ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL")),
                      ((loc, t) for loc, ids in pii_faker.national_ids.items() for t in ids)))


def _all_cells(table: pa.Table) -> list[str]:
    cells = []
    for col in table.columns:
        cells.extend(str(v) for v in col.to_pylist() if v is not None)
    return cells


def test_default_profile_leaves_no_personal_value(pii_faker, default_profile, locale):
    """No original value of any PII column, nor any entity inside free text, appears
    anywhere in the masked table (as a whole cell, or inside one for values of ten
    characters or more, where a chance match inside a hex digest is negligible)."""
    table, pii_columns, entities = _pii_table(pii_faker, locale, 200)
    profile = dataclasses.replace(default_profile, default_region=pii_faker.regions[locale])
    masked, report = apply_profile(table, profile, KEYS)

    by_column = {c.column: c for c in report.columns}
    for name in pii_columns:
        assert by_column[name].action != "keep", by_column[name]
    assert by_column["notes"].action == "scan"
    for name in pii_faker.shared_non_pii(locale, 1):
        if (locale, name) == ("de_DE", "comment"):
            # Known limit (docs/masking.md): in Faker's German word salad the names model reads
            # pairs of capitalised nouns ("Ferien Uhr") as names in ~4 % of sentences, enough
            # to scan the column; the scan replaces those pairs and leaves the rest.
            assert by_column[name].action in ("keep", "scan"), by_column[name]
            continue
        assert by_column[name].action == "keep", by_column[name]

    cells = _all_cells(masked)
    whole = set(cells)
    text = "\x00".join(cells)
    # A short value the input also holds in a column that is not personal (a zip code
    # that is also a random `reference` number) is no leak when it shows up there.
    innocent = set(_all_cells(table.select([c for c in table.column_names if c not in pii_columns])))
    leaks = []
    for name, values in pii_columns.items():
        for value in values:
            if value in innocent:
                continue
            if value in whole or (len(value) >= 10 and value in text):
                leaks.append((name, value))
    for value in entities:
        if value in whole or value in text:
            leaks.append(("notes", value))
    assert not leaks, leaks[:10]
    assert masked.num_rows == table.num_rows and report.key_id == "test/v1"


def test_tokenised_cards_come_back_with_the_key(pii_faker, default_profile):
    cards = pii_faker.values("CREDIT_CARD", "en_US", 50)
    masked, _ = apply_profile(pa.table({"card_number": cards}), default_profile, KEYS)
    tokens = masked.column("card_number")
    assert tokens.to_pylist() != cards
    restored = detokenise(tokens, KEYS.token_key, tweak="card_number").to_pylist()
    short = [i for i, c in enumerate(cards) if len(c) < 6]
    assert [r for i, r in enumerate(restored) if i not in short] == [c for i, c in enumerate(cards) if i not in short]


def test_safety_net_names_every_uncovered_column(pii_faker):
    profile = parse_profile({"rules": [{"pii_type": "EMAIL", "action": "hash"}]})
    table = pa.table({
        "email": pii_faker.values("EMAIL", "en_US", 50),
        "phone": pii_faker.values("PHONE", "en_US", 50),
        "ssn": pii_faker.values("US_SSN", "en_US", 50),
        "word": [pii_faker.faker("en_US").word() for _ in range(50)],
    })
    with pytest.raises(FailedPrecondition) as err:
        apply_profile(table, profile, KEYS)
    message = err.value.message
    assert "'phone'" in message and "PHONE" in message and "'ssn'" in message and "US_SSN" in message
    assert "'email'" not in message and "'word'" not in message


def test_safety_net_for_free_text_and_scan_types():
    table = pa.table({"notes": ["Please write to ann@example.org about the delivery next week."] * 10
                      + ["Call me on +44 20 7946 0958 when you are back."] * 10})
    with pytest.raises(FailedPrecondition, match="'notes'.*FREE_TEXT"):
        apply_profile(table, parse_profile({"rules": []}), KEYS)
    narrow = parse_profile({"rules": [{"pii_type": "FREE_TEXT", "action": "scan", "types": ["EMAIL"]}]})
    with pytest.raises(FailedPrecondition, match="no rule covers PHONE"):
        apply_profile(table, narrow, KEYS)
    full = parse_profile({"rules": [{"pii_type": "FREE_TEXT", "action": "scan"}]})
    masked, _ = apply_profile(table, full, None)
    assert set(masked.column("notes").to_pylist()) == {
        "Please write to <EMAIL> about the delivery next week.", "Call me on <PHONE> when you are back."}


def test_opaque_columns_must_be_named():
    table = pa.table({"blob": [b"\x00\x01"], "tags": [["a", "b"]]})
    with pytest.raises(FailedPrecondition, match="'blob'.*binary or nested"):
        apply_profile(table, parse_profile({"rules": []}), None)
    profile = parse_profile({"rules": [{"column": "blob", "action": "drop"}, {"column": "tags", "action": "keep"}]})
    masked, report = apply_profile(table, profile, None)
    assert masked.column_names == ["tags"] and report.dropped == ["blob"]


def test_column_rules_win_over_type_rules(pii_faker):
    emails = pii_faker.values("EMAIL", "en_US", 30)
    table = pa.table({"email": emails, "backup_email": emails})
    profile = parse_profile({"rules": [
        {"pii_type": "EMAIL", "action": "hash", "length": 16},
        {"column": "backup_email", "action": "redact", "token": "[gone]"},
    ]})
    masked, report = apply_profile(table, profile, KEYS)
    assert set(masked.column("backup_email").to_pylist()) == {"[gone]"}
    assert all(len(h) == 16 for h in masked.column("email").to_pylist())
    assert [c.rule for c in report.columns] == ["rules[0]", "rules[1]"]


def test_same_domain_keys_give_joinable_hashes(pii_faker):
    emails = pii_faker.values("EMAIL", "en_GB", 20)
    profile = parse_profile({"domain": "crm", "rules": [{"pii_type": "EMAIL", "action": "hash"}]})
    a, _ = apply_profile(pa.table({"email": emails}), profile, KEYS)
    b, _ = apply_profile(pa.table({"contact_email": list(reversed(emails))}), profile, KEYS)
    assert set(a.column("email").to_pylist()) == set(b.column("contact_email").to_pylist())


def test_k_anonymity_through_the_profile(pii_faker, default_profile):
    f = pii_faker.faker("en_US")
    n = 600
    table = pa.table({
        "email": pii_faker.values("EMAIL", "en_US", n),
        "age": [f.random_int(18, 90) for _ in range(n)],
        "zip": [f"{f.random_int(10000, 10300):05d}" for _ in range(n)],
        "diagnosis": [f.random_element(("flu", "asthma", "none")) for _ in range(n)],
    })
    masked, report = apply_profile(table, default_profile, KEYS, quasi_identifiers=["age", "zip"], k=5,
                                   l_diversity=("diagnosis", 2))
    assert is_k_anonymous(masked, ["age", "zip"], 5, sensitive="diagnosis", l=2)
    kr = report.k_anonymity
    assert kr is not None and kr.rows_in == n and kr.rows_out == masked.num_rows == report.rows_out
    assert kr.suppressed_rows <= 0.05 * n
    assert {c.column: c.action for c in report.columns}["zip"] == "k-anonymity"
    assert report.to_dict()["k_anonymity"]["levels"].keys() == {"age", "zip"}


def test_preview_shows_before_and_after_without_failing(pii_faker, default_profile):
    table = pa.table({
        "email": pii_faker.values("EMAIL", "en_US", 40),
        "phone": pii_faker.values("PHONE", "en_US", 40),
    })
    shown = {p.column: p for p in preview(table, default_profile, KEYS, rows=5)}
    assert len(shown["email"].original) == len(shown["email"].masked) == 5
    assert shown["email"].masked != shown["email"].original and shown["email"].action == "hash"
    narrow = parse_profile({"rules": [{"pii_type": "EMAIL", "action": "hash"}]})
    shown = {p.column: p for p in preview(table, narrow, KEYS, rows=3)}
    assert shown["phone"].masked is None and "PHONE" in shown["phone"].problem


PROFILE_ERRORS = [
    ("rules: [{column: a, action: hash}, {pii_type: EMAIL, action: hsh}]", "rules[1].action"),
    ("rules: [{pii_type: PHONE, action: partial}]", "rules[0].action"),
    ("rules: [{pii_type: PHONE, action: partial, keep_last: two}]", "rules[0].keep_last"),
    ("rules: [{pii_type: PHONE, action: partial, keep_last: 2, colour: red}]", "rules[0].colour"),
    ("rules: [{pii_type: PHONE}]", "rules[0].action"),
    ("rules: [{pii_type: SHOE_SIZE, action: drop}]", "rules[0].pii_type"),
    ("rules: [{column: a, pii_type: EMAIL, action: drop}]", "rules[0]"),
    ("rules: [{action: drop}]", "rules[0]"),
    ("rules: [hash]", "rules[0]"),
    ("rules: [{column: a, action: drop}, {column: a, action: keep}]", "rules[1].column"),
    ("rules: [{pii_type: EMAIL, action: drop}, {pii_type: EMAIL, action: keep}]", "rules[1].pii_type"),
    ("rules: [{column: a, action: generalise, bins: -5}]", "rules[0].bins"),
    ("rules: {a: b}", "rules"),
    ("default_region: Mars", "default_region"),
    ("domain: 'no spaces allowed'", "domain"),
    ("max_suppression: 2", "max_suppression"),
    ("colour: blue", "colour"),
    ("quasi_identifiers: {age: {bins: [10, 5]}}", "quasi_identifiers.age.bins"),
    ("rules: [", "profile"),
    ("- just a list", "profile"),
]


@pytest.mark.parametrize(("text", "field"), PROFILE_ERRORS)
def test_profile_errors_name_the_rule(text, field):
    with pytest.raises(InvalidArgument) as err:
        parse_profile(text)
    assert err.value.field == field


def test_errors_that_need_the_table():
    table = pa.table({"email": ["a@b.org"], "age": [30]})
    with pytest.raises(InvalidArgument) as err:
        apply_profile(table, parse_profile("rules: [{pii_type: EMAIL, action: hash}, {column: mail, action: drop}]"), KEYS)
    assert err.value.field == "rules[1].column"
    with pytest.raises(InvalidArgument) as err:
        apply_profile(table, parse_profile("rules: [{pii_type: EMAIL, action: hash}]"), None)
    assert err.value.field == "keys.hash_key" and "rules[0]" in err.value.message
    with pytest.raises(InvalidArgument) as err:
        apply_profile(table, parse_profile("rules: [{column: age, action: drop}]"), KEYS,
                      quasi_identifiers=["age"], k=2)
    assert err.value.field == "rules[0].column"
    with pytest.raises(InvalidArgument) as err:
        apply_profile(table, parse_profile("rules: [{column: email, action: generalise, bins: 5}]"), KEYS)
    assert err.value.field == "rules[0].action"


def test_plan_once_mask_batch_by_batch(pii_faker, default_profile):
    """A plan made on the first batch masks every later batch exactly as the whole table."""
    table, _, _ = _pii_table(pii_faker, "en_GB", 120)
    profile = dataclasses.replace(default_profile, default_region="GB")
    whole, report = apply_profile(table, profile, KEYS)
    plan = plan_masking(table.slice(0, 40), profile, KEYS)
    batches = [plan.mask(b) for b in table.to_batches(max_chunksize=40)]
    assert pa.concat_tables(batches).equals(whole)
    assert plan.columns == report.columns and plan.output_columns == whole.column_names
    # The keyed-hash memos it filled hold raw values: a plan shipped to a worker leaves them.
    assert any(plan._memos.values())
    shipped = pickle.loads(pickle.dumps(plan))
    assert shipped._memos == {} and shipped.mask(table).equals(whole)
    with pytest.raises(InvalidArgument) as err:
        plan.mask(table.drop_columns(["notes"]))
    assert err.value.field == "columns"


def test_quasi_identifiers_without_k_are_masked_as_usual(pii_faker, default_profile):
    dobs = pii_faker.values("DATE_OF_BIRTH", "en_US", 40)
    masked, report = apply_profile(pa.table({"date_of_birth": dobs}), default_profile, KEYS,
                                   quasi_identifiers=["date_of_birth"], k=1)
    assert report.columns[0].action == "generalise" and report.k_anonymity is None
    assert masked.column(0).to_pylist() == [d[:4] for d in dobs]


def test_strict_profile(pii_faker):
    strict = load_profile(POLICIES / "strict.yaml")
    table = pa.table({
        "email": pii_faker.values("EMAIL", "en_GB", 30),
        "phone": pii_faker.values("PHONE", "en_GB", 30),
        "full_name": pii_faker.values("PERSON_NAME", "en_GB", 30),
        "notes": [f"Spoke to them at {e}." for e in pii_faker.values("EMAIL", "en_GB", 30)],
    })
    masked, report = apply_profile(table, strict, KEYS)
    assert masked.column_names == ["phone", "full_name", "notes"] and report.dropped == ["email"]
    assert all(set(p[:-2]) <= set("#+ ()-.x") for p in masked.column("phone").to_pylist())
    assert set(masked.column("full_name").to_pylist()) == {"[NAME]"}
    notes = masked.column("notes").to_pylist()
    assert all(n.startswith("Spoke to them at <EMAIL_") for n in notes)


def test_verify_catches_pii_that_appears_in_a_later_batch(pii_faker, default_profile):
    first = pa.table({"code": [f"SKU-{i:05d}" for i in range(2000)]})
    plan = plan_masking(first, default_profile, KEYS)
    assert plan.columns[0].action == "keep"
    plan.verify(first)
    later = pa.table({"code": [f"SKU-{i:05d}" for i in range(1999)] + ["jane.doe@example.com"]})
    with pytest.raises(FailedPrecondition, match="'code'.*EMAIL"):
        plan.verify(later)


def test_street_addresses_are_masked_by_the_shipped_profiles(pii_faker, default_profile):
    """Faker's `street_address()` in an `address` column: hashed by default, redacted by
    strict; no original address is left."""
    addresses = pii_faker.values("ADDRESS", "en_US", 50) + pii_faker.values("ADDRESS", "de_DE", 50)
    table = pa.table({"address": addresses, "ip_address": [f"10.0.0.{i}" for i in range(100)]})
    masked, report = apply_profile(table, default_profile, KEYS)
    by_column = {c.column: c for c in report.columns}
    assert by_column["address"].action == "hash" and by_column["address"].pii_types == ["ADDRESS"]
    assert by_column["ip_address"].pii_types == ["IP_ADDRESS"]
    assert not set(addresses) & set(masked.column("address").to_pylist())
    strict, _ = apply_profile(table, load_profile(POLICIES / "strict.yaml"), KEYS)
    assert set(strict.column("address").to_pylist()) == {"[ADDRESS]"}

"""Masking operators: each maps a column to a column, nulls stay null."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privet.governance.errors import InvalidArgument
from privet.governance.masking import (
    MaskingKeys,
    detokenise,
    generalise_date,
    generalise_numeric,
    generalise_prefix,
    keep,
    keyed_hash,
    partial_mask,
    redact,
    scan,
    tokenise,
)
from privet.governance.masking.operators import OPERATORS, HashMemo, check_params

KEY = bytes(range(32))


def test_keep_and_redact():
    col = pa.array(["a", None, "c"])
    assert keep(col) is col
    assert redact(col).to_pylist() == ["[REDACTED]", None, "[REDACTED]"]
    assert redact(pa.chunked_array([[1, None], [3]]), "X").to_pylist() == ["X", None, "X"]


@pytest.mark.parametrize(("kwargs", "value", "expected"), [
    ({"keep_last": 4}, "4111-1111-1111-1234", "****-****-****-1234"),
    ({"keep_first": 3}, "+44 20 7946 0958", "+44 ** **** ****"),
    ({"keep_first": 1, "keep_last": 2}, "Jürgen", "J***en"),
    ({"keep_last": 4}, "123", "***"),               # too short: never shown whole
    ({"keep_last": 2, "mask_char": "#"}, "ab-cd", "##-cd"),
])
def test_partial_mask(kwargs, value, expected):
    assert partial_mask(pa.array([value, None]), **kwargs).to_pylist() == [expected, None]


def test_keyed_hash_is_hmac_sha256_once_per_distinct_value():
    col = pa.chunked_array([["alice@x.org", "bob@y.org", None], ["alice@x.org", "ALICE@x.org"]])
    out = keyed_hash(col, KEY, length=64).to_pylist()
    expected = hmac.new(KEY, b"hash\x00alice@x.org", hashlib.sha256).hexdigest()
    assert out[0] == out[3] == expected
    assert out[2] is None and out[1] != out[0] and out[4] != out[0]
    for length in (8, 31, 32, 63):  # a prefix of the hex digest, odd lengths too
        assert keyed_hash(col, KEY, length=length).to_pylist()[0] == expected[:length]
    folded = keyed_hash(col, KEY, normalize="lower").to_pylist()
    assert folded[4] == folded[0] and len(folded[0]) == 32
    assert keyed_hash(col, b"x" * 32).to_pylist()[0] != folded[0]


def test_keyed_hash_memo_carries_digests_across_batches_up_to_its_capacity(monkeypatch):
    monkeypatch.setattr("privet.governance.masking.hash_memo.MEMO_CAPACITY", 3)
    memo: dict[bytes, bytes] = {}
    first = pa.array(["ann", "bob", "cy", "dee", None, "ann"])
    later = pa.array(["dee", "ann", "eve", "Bob"])
    for batch in (first, later):
        # With or without a memo, and at every length, the hex digits are the same.
        for length in (8, 31, 64):
            assert keyed_hash(batch, KEY, length=length, memo=memo).to_pylist() == keyed_hash(batch, KEY, length=length).to_pylist()
    assert len(memo) == 3 and set(memo) <= {b"ann", b"bob", b"cy", b"dee"}
    # A remembered value is served from the memo, not re-hashed: plant a digest to see it.
    memo[b"ann"] = bytes(32)
    assert keyed_hash(pa.array(["ann"]), KEY, length=8, memo=memo).to_pylist() == ["00000000"]


def test_a_full_memo_that_stops_paying_retires(monkeypatch):
    monkeypatch.setattr("privet.governance.masking.hash_memo.MEMO_CAPACITY", 4)
    memo = HashMemo()
    recurring = pa.array(["ann", "bob", "cy", "dee"])
    keyed_hash(recurring, KEY, memo=memo)
    keyed_hash(recurring, KEY, memo=memo)  # full, and every value a hit: it stays
    assert not memo.retired and len(memo) == 4
    fresh = pa.array([f"user{i}" for i in range(40)] + ["ann"])  # 1 hit in 41
    expected = keyed_hash(fresh, KEY).to_pylist()
    assert keyed_hash(fresh, KEY, memo=memo).to_pylist() == expected
    assert memo.retired and len(memo) == 0  # and the raw values it held are gone
    assert keyed_hash(fresh, KEY, memo=memo).to_pylist() == expected  # still right, unremembered
    assert len(memo) == 0


@pytest.mark.parametrize("values", [pa.array([], pa.string()), pa.array([None, None], pa.string()),
                                    pa.chunked_array([[None], []], pa.string())])
def test_keyed_hash_of_nothing_to_hash(values):
    assert keyed_hash(values, KEY, length=31).to_pylist() == [None] * len(values)


def test_keyed_hash_of_numbers_and_digit_normalisation():
    a = keyed_hash(pa.array(["+1 (415) 555-2671"]), KEY, normalize="digits").to_pylist()
    b = keyed_hash(pa.array([14155552671]), KEY).to_pylist()
    assert a == b


def test_tokenise_keeps_format_and_reverses():
    values = ["4111-1111-1111-1111", "4111111111111111", "GB82 WEST 1234 5698 7654 32", None, "12-34"]
    col = pa.array(values)
    tokens = tokenise(col, KEY, tweak="card_number").to_pylist()
    assert tokens[0] != values[0] and tokens[0][4] == tokens[0][9] == "-" and tokens[0].replace("-", "").isdigit()
    assert tokens[1] != values[1] and len(tokens[1]) == 16 and tokens[1].isdigit()
    assert tokens[2][:2] == "GB" and tokens[2][4:10] == " WEST " and tokens[2] != values[2]
    assert tokens[3] is None
    assert tokens[4] == "**-**"  # four digits: below FF1's minimum domain, masked instead
    back = detokenise(pa.array(tokens), KEY, tweak="card_number").to_pylist()
    assert back[:4] == values[:4]
    other_tweak = tokenise(col, KEY, tweak="other").to_pylist()
    assert other_tweak[1] != tokens[1]


def test_tokenise_alnum():
    tokens = tokenise(pa.array(["AB12cd34"]), KEY[:16], tweak=b"t", alphabet="alnum").to_pylist()
    assert len(tokens[0]) == 8 and tokens[0].isalnum() and tokens[0] == tokens[0].upper()
    assert detokenise(pa.array(tokens), KEY[:16], tweak=b"t", alphabet="alnum").to_pylist() == ["AB12CD34"]


def test_generalise_numeric():
    assert generalise_numeric(pa.array([37, 40, None, -1]), 10).to_pylist() == ["[30, 40)", "[40, 50)", None, "[-10, 0)"]
    assert generalise_numeric(pa.array([2.75]), 0.5).to_pylist() == ["[2.5, 3)"]
    with pytest.raises(InvalidArgument):
        generalise_numeric(pa.array(["abc"]), 5)


def test_generalise_date():
    col = pa.array(["1985-03-12", "12/03/1985", "not a date", None])
    assert generalise_date(col, "month").to_pylist() == ["1985-03", "1985-03", None, None]
    assert generalise_date(pa.array([dt.date(1990, 7, 1)]), "year").to_pylist() == ["1990"]


def test_generalise_prefix():
    assert generalise_prefix(pa.array(["75011", "SW1A 1AA", None]), 2).to_pylist() == ["75***", "SW** ***", None]


def test_scan_operator():
    col = pa.array(["mail me: a@b.co", None])
    assert scan(col).to_pylist() == ["mail me: <EMAIL>", None]


def test_masking_keys_check_sizes_and_derive():
    with pytest.raises(InvalidArgument) as err:
        MaskingKeys(hash_key=b"short")
    assert err.value.field == "keys.hash_key"
    with pytest.raises(InvalidArgument) as err:
        MaskingKeys(token_key=b"x" * 20)
    assert err.value.field == "keys.token_key"
    keys = MaskingKeys.derive(b"s" * 32, key_id="ds-1/v1")
    assert len(keys.hash_key) == 32 and keys.hash_key != keys.token_key
    assert MaskingKeys.derive(b"s" * 32).hash_key == keys.hash_key
    assert "s" * 8 not in repr(keys) and keys.hash_key.hex() not in repr(keys)


@pytest.mark.parametrize(("name", "params", "field"), [
    ("hsh", {}, "rules[0].action"),
    ("partial", {}, "rules[0].action"),
    ("partial", {"keep_last": "two"}, "rules[0].keep_last"),
    ("partial", {"keep_last": True}, "rules[0].keep_last"),
    ("partial", {"keep_last": -1}, "rules[0].keep_last"),
    ("hash", {"length": 4}, "rules[0].length"),
    ("hash", {"salt": "x"}, "rules[0].salt"),
    ("generalise", {}, "rules[0].action"),
    ("generalise", {"bins": 5, "prefix": 2}, "rules[0].action"),
    ("generalise", {"date": "week"}, "rules[0].date"),
    ("scan", {"types": ["EMAIL", "SHOE_SIZE"]}, "rules[0].types"),
    ("tokenise", {"alphabet": "hex"}, "rules[0].alphabet"),
])
def test_operator_parameters_are_checked(name, params, field):
    with pytest.raises(InvalidArgument) as err:
        check_params(name, params, "rules[0]")
    assert err.value.field == field


def test_every_operator_is_registered():
    assert set(OPERATORS) == {"keep", "drop", "redact", "partial", "hash", "tokenise", "generalise", "scan"}
    assert check_params("partial", {"keep_last": 4}, "r") == {"keep_first": 0, "keep_last": 4, "mask_char": "*"}


@settings(max_examples=80, deadline=None)
@given(st.lists(st.text(alphabet="0123456789 -./()+", min_size=1, max_size=30), min_size=1, max_size=20))
def test_tokenise_round_trips_and_keeps_every_separator(values):
    tokens = tokenise(pa.array(values), KEY, tweak="col").to_pylist()
    back = detokenise(pa.array(tokens), KEY, tweak="col").to_pylist()
    for value, token, restored in zip(values, tokens, back):
        assert len(token) == len(value)
        assert [c for c in token if not c.isdigit() and c != "*"] == [c for c in value if not c.isdigit()]
        digits = sum(c.isdigit() for c in value)
        if digits >= 6:
            assert restored == value
        elif digits:
            assert not any(c.isdigit() for c in token)  # too short for FF1: masked, not shown


def test_keyed_hash_is_hmac_sha256_of_the_prefixed_value() -> None:
    """The documented construction, checked against cryptography's HMAC: hashes written
    by earlier versions stay joinable."""
    from cryptography.hazmat.primitives import hashes as _hashes
    from cryptography.hazmat.primitives import hmac as _hmac

    key = bytes(range(32))
    values = ["alice@example.org", "jürgen@例え.jp", "", "+1 202 555 0143"]

    def reference(value: str) -> str:
        mac = _hmac.HMAC(key, _hashes.SHA256())
        mac.update(b"hash\x00" + value.encode())
        return mac.finalize().hex()[:32]

    # A blank cell stays blank: it holds nothing to protect, and hashed it would read as a value.
    assert keyed_hash(pa.array(values), key).to_pylist() == [reference(v) if v else v for v in values]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="0123456789 -/é漢A", min_size=1, max_size=40), min_size=1, max_size=25))
def test_tokenised_digits_are_ff1_of_each_values_digits_written_back_in_place(values):
    """The column path (digits read and written as bytes, FF1 over numpy halves) gives, value
    by value, FF1 of the value's digits put back where the digits were."""
    from privet.governance.masking.ff1 import FF1

    cipher = FF1(KEY, 10)
    tokens = tokenise(pa.array(values), KEY, tweak="col").to_pylist()
    for value, token in zip(values, tokens):
        digits = "".join(c for c in value if c.isascii() and c.isdigit())
        if len(digits) < cipher.minlen:
            continue  # masked instead (the round-trip test covers it)
        encrypted = iter(cipher.encrypt(digits, b"col"))
        assert token == "".join(next(encrypted) if c.isascii() and c.isdigit() else c for c in value)

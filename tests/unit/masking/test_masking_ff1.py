"""FF1 against NIST's sample vectors, and the batched implementation against the scalar one."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privet.governance.errors import InvalidArgument
from privet.governance.masking.ff1 import ALPHABET, FF1, min_length

# NIST SP 800-38G sample vectors for FF1 (csrc.nist.gov, "FF1samples.pdf"), samples 1-9.
_K128 = "2B7E151628AED2A6ABF7158809CF4F3C"
_K192 = _K128 + "EF4359D8D580AA4F"
_K256 = _K192 + "7F036D6F04FC6A94"
_T10 = "39383736353433323130"
_T36 = "3737373770717273373737"
NIST_SAMPLES = [
    # (sample, key, radix, tweak, plaintext, ciphertext)
    (1, _K128, 10, "", "0123456789", "2433477484"),
    (2, _K128, 10, _T10, "0123456789", "6124200773"),
    (3, _K128, 36, _T36, "0123456789abcdefghi", "a9tv40mll9kdu509eum"),
    (4, _K192, 10, "", "0123456789", "2830668132"),
    (5, _K192, 10, _T10, "0123456789", "2496655549"),
    (6, _K192, 36, _T36, "0123456789abcdefghi", "xbj3kv35jrawxv32ysr"),
    (7, _K256, 10, "", "0123456789", "6657667009"),
    (8, _K256, 10, _T10, "0123456789", "1001623463"),
    (9, _K256, 36, _T36, "0123456789abcdefghi", "xs8a0azh2avyalyzuwd"),
]


@pytest.mark.parametrize(("sample", "key", "radix", "tweak", "plaintext", "ciphertext"), NIST_SAMPLES,
                         ids=[f"sample{s[0]}" for s in NIST_SAMPLES])
def test_nist_sample(sample, key, radix, tweak, plaintext, ciphertext):
    ff1 = FF1(bytes.fromhex(key), radix)
    t = bytes.fromhex(tweak)
    assert ff1.encrypt(plaintext, t) == ciphertext
    assert ff1.decrypt(ciphertext, t) == plaintext
    assert ff1.encrypt_many([plaintext], t) == [ciphertext]
    assert ff1.decrypt_many([ciphertext], t) == [plaintext]


@settings(max_examples=60, deadline=None)
@given(
    radix=st.sampled_from([10, 36, 16, 2]),
    lengths=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=12),
    tweak=st.binary(max_size=40),
    data=st.data(),
)
def test_batched_agrees_with_the_standard_steps(radix, lengths, tweak, data):
    ff1 = FF1(bytes(range(16)), radix)
    alphabet = ALPHABET[:radix]
    values = [
        data.draw(st.text(alphabet=alphabet, min_size=ff1.minlen + n, max_size=ff1.minlen + n)) for n in lengths
    ]
    encrypted = ff1.encrypt_many(values, tweak)
    assert encrypted == [ff1.encrypt(v, tweak) for v in values]
    assert ff1.decrypt_many(encrypted, tweak) == values
    assert [len(e) for e in encrypted] == [len(v) for v in values]


@pytest.mark.parametrize(("radix", "n"), [(10, 18), (10, 19), (10, 20), (10, 27), (10, 28), (10, 29), (36, 18), (2, 92), (2, 93), (2, 94)])
def test_vectorised_halves_agree_with_the_standard_steps_at_their_limit(radix, n):
    # Either side of the 2**47 half limit (28 decimal digits: every IBAN's count), where the
    # numpy path folds S in 16-bit limbs and beyond which the integer path takes over.
    ff1 = FF1(bytes(range(32)), radix)
    rng = random.Random(n * radix)
    values = ["".join(rng.choice(ALPHABET[:radix]) for _ in range(n)) for _ in range(150)]
    assert ff1.numpy_ok(n) == (n - n // 2 <= {10: 14, 36: 9, 2: 46}[radix])  # the largest halves under 2**47
    encrypted = ff1.encrypt_many(values, b"iban")
    assert encrypted == [ff1.encrypt(v, b"iban") for v in values]
    assert ff1.decrypt_many(encrypted, b"iban") == values


def test_tweak_and_key_change_the_output():
    a = FF1(b"k" * 16).encrypt("4111111111111111", b"card")
    assert a != FF1(b"k" * 16).encrypt("4111111111111111", b"other")
    assert a != FF1(b"j" * 16).encrypt("4111111111111111", b"card")


def test_min_length_follows_the_million_bound():
    assert min_length(10) == 6
    assert min_length(36) == 4
    assert min_length(2) == 20


@pytest.mark.parametrize(("key", "radix", "value", "field"), [
    (b"short", 10, "123456", "key"),
    (b"k" * 16, 1, "123456", "radix"),
    (b"k" * 16, 37, "123456", "radix"),
    (b"k" * 16, 10, "12345", "numerals"),      # below the 10^6 domain size
    (b"k" * 16, 10, "12345a", "numerals"),
])
def test_bad_input_is_rejected(key, radix, value, field):
    with pytest.raises(InvalidArgument) as err:
        FF1(key, radix).encrypt(value)
    assert err.value.field == field

"""Format-preserving tokenisation (FF1): `tokenise` encrypts each value's numerals in place,
keeping separators where they are, and `detokenise` reverses it with the same key and
tweak. Each distinct value is encrypted once; the digits alphabet runs in numpy
(`_ff1_digits`)."""

from __future__ import annotations

import re

from privet.governance.errors import InvalidArgument
from privet.governance.masking._columns import Column, per_distinct
from privet.governance.masking._ff1_digits import ff1_digits
from privet.governance.masking.ff1 import FF1

__all__ = ["detokenise", "tokenise"]

_ALPHABETS = {"digits": (10, re.compile(r"[0-9]")), "alnum": (36, re.compile(r"[0-9A-Za-z]"))}


def _refill(numeral: re.Pattern[str], template: str, numerals: str) -> str:
    """`template` with its numerals replaced, in order, by those of `numerals`."""
    it = iter(numerals)
    return numeral.sub(lambda _m: next(it), template)


def _fpe(values: Column, key: bytes, tweak: bytes | str, alphabet: str, *, decrypt: bool) -> Column:
    if alphabet not in _ALPHABETS:
        raise InvalidArgument("alphabet", "expected 'digits' or 'alnum'")
    radix, numeral = _ALPHABETS[alphabet]
    cipher = FF1(key, radix)
    tweak_bytes = tweak.encode() if isinstance(tweak, str) else bytes(tweak)

    def transform(distinct: list[str]) -> list[str]:
        numerals = ["".join(numeral.findall(v)) for v in distinct]
        if alphabet == "alnum":
            numerals = [n.lower() for n in numerals]
        work = [i for i, n in enumerate(numerals) if len(n) >= cipher.minlen]
        fn = cipher.decrypt_many if decrypt else cipher.encrypt_many
        done = fn([numerals[i] for i in work], tweak_bytes)
        out = list(distinct)
        for i, token in zip(work, done):
            token = token.upper() if alphabet == "alnum" else token
            if len(token) == len(distinct[i]):
                out[i] = token
            else:  # put the numerals back between the separators
                out[i] = _refill(numeral, distinct[i], token)
        if not decrypt:
            # Too few numerals for FF1's security bound: no reversible token, mask them.
            for i, n in enumerate(numerals):
                if 0 < len(n) < cipher.minlen:
                    out[i] = numeral.sub("*", distinct[i])
        return out

    if alphabet == "digits":
        return per_distinct(values, on_array=lambda distinct: ff1_digits(distinct, cipher, tweak_bytes, transform,
                                                                          decrypt=decrypt))
    return per_distinct(values, transform)


def tokenise(values: Column, key: bytes, *, tweak: bytes | str, alphabet: str = "digits") -> Column:
    """Format-preserving encryption (FF1, AES `key`) of each value's numerals, in place:
    with `alphabet="digits"` digits stay digits and every other character stays where it
    is (`4111-1111-1111-1111` → `7730-5921-0871-3348`); with "alnum" letters and digits
    are encrypted together (radix 36, output upper case). `tweak` is the column name, or
    a name shared across tables whose tokens must join. `detokenise` reverses it with the
    same key and tweak. Values with fewer numerals than FF1 allows (6 digits, 4 alnum)
    cannot be tokenised safely; their numerals become `*` and cannot be recovered."""
    return _fpe(values, key, tweak, alphabet, decrypt=False)


def detokenise(values: Column, key: bytes, *, tweak: bytes | str, alphabet: str = "digits") -> Column:
    """The inverse of `tokenise` under the same key, tweak and alphabet ("alnum" comes
    back upper case)."""
    return _fpe(values, key, tweak, alphabet, decrypt=True)

"""Fuzz target: the masking profile loader (governance.masking.profile.parse_profile).

Contract: any text either parses into a MaskingProfile or raises InvalidArgument naming the
field at fault. Nothing else escapes, and no input hangs.

Two kinds of input, chosen by the first byte: YAML text as given, or a profile built from
the input (the loader's own keys, operators and parameters, with values of every type),
dumped to YAML: type confusion that byte mutation of a valid profile rarely reaches."""

from __future__ import annotations

if __name__ == "__main__":
    import atheris

    with atheris.instrument_imports(include=["governance"]):
        from privet.governance.masking import profile as masking_profile
else:
    from privet.governance.masking import profile as masking_profile

import pathlib

import yaml

from privet.governance.errors import InvalidArgument
from privet.governance.masking.entities import PiiType
from privet.governance.masking.operators import OPERATORS
from tests.security.fuzz._harness import Cursor, KnownGaps, fuzz_main

_SHIPPED = pathlib.Path(__file__).resolve().parents[3] / "policies" / "masking"

# The loader's vocabulary, so that built profiles get past the first checks.
WORDS = tuple(sorted(
    set(masking_profile._TOP_KEYS) | {"column", "pii_type", "action"} | set(OPERATORS)
    | {param for spec in OPERATORS.values() for param in spec.params} | {t.value for t in PiiType}
    | {"bins", "prefix", "date", "suppress", "month", "year", "US", "GB", "age", "zip", "notes"}
))

KNOWN_GAPS = KnownGaps()  # none open: every input parses or raises the documented error

SEEDS = [b"\x00" + p.read_bytes() for p in sorted(_SHIPPED.glob("*.yaml"))] + [
    (
        b"\x00rules:\n  - {column: notes, action: scan, replace: pseudonym}\n  - {pii_type: EMAIL, action: hash}\n"
        b"  - {pii_type: PHONE, action: partial, keep_last: 2}\n"
    ),
    (
        b"\x00domain: crm\ndefault_region: GB\nquasi_identifiers:\n  age: {bins: [5, 10, 20]}\n  zip: {prefix: [4, 3, 2]}\n"
        b"  birth_date: {date: [month, year]}\n  sex: {suppress: true}\nmax_suppression: 0.05\n"
    ),
    b"\x00sample: 100\nmin_share: 0.5\nrules: []\n",
    b"\x01\x03\x05\x02\x04\x07\x05\x03\x01\x05\x06\x04\x09\x02\x05\x03\x05\x04\x04\x05\x02",
]


def _structured(cursor: Cursor) -> str:
    """A profile: some top-level keys, a few rules of a real operator with parameters of
    any type, and quasi-identifier hierarchies of any shape."""
    profile: dict[str, object] = {}
    for _ in range(cursor.byte() % 3):
        profile[cursor.pick(masking_profile._TOP_KEYS)] = cursor.value(WORDS)
    rules = []
    for _ in range(cursor.byte() % 4):
        rule: dict[str, object] = {"action": cursor.pick(tuple(OPERATORS))}
        rule["column" if cursor.byte() & 1 else "pii_type"] = cursor.pick(WORDS)
        params = tuple(OPERATORS[rule["action"]].params) or ("x",)
        for _ in range(cursor.byte() % 4):
            rule[cursor.pick(params)] = cursor.value(WORDS)
        rules.append(rule)
    profile["rules"] = rules
    if cursor.byte() & 1:
        profile["quasi_identifiers"] = {cursor.pick(WORDS): {cursor.pick(("bins", "prefix", "date", "suppress")): cursor.value(WORDS)}}
    return yaml.safe_dump(profile, allow_unicode=True)


def check(data: bytes) -> None:
    cursor = Cursor(data)
    text = _structured(cursor) if cursor.byte() & 1 else cursor.rest().decode("utf-8", errors="replace")
    try:
        parsed = masking_profile.parse_profile(text, name="fuzz")
    except InvalidArgument:
        return
    except Exception as exc:
        if exc not in KNOWN_GAPS:
            raise
        return
    assert isinstance(parsed, masking_profile.MaskingProfile)


if __name__ == "__main__":
    fuzz_main(check)

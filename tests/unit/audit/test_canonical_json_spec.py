"""docs/audit-format.md §1.1 is the whole of canonical JSON: its vectors, read from the
document itself, are reproduced byte for byte; an encoder written from the document alone
agrees with Privet's on any value; lone surrogates are refused on append and in verification."""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privet.governance.audit.hashing import leaf_hash
from privet.governance.audit.leaf import (
    LEAF_PREFIX,
    EventRecord,
    canonical_json,
    decode_leaf,
    encode_leaf,
)
from privet.governance.audit.log import AuditLog, Event
from privet.governance.audit.merkle import MerkleFrontier
from privet.governance.errors import InvalidArgument

DOC = pathlib.Path(__file__).resolve().parents[3] / "docs" / "audit-format.md"
MARKER = "<!-- canonical-json-vectors"


def _doc_vectors() -> list[tuple[str, str]]:
    """(in, out) pairs from the block after the marker; out is the canonical text or
    'REFUSED …'."""
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"```\n(.*?)\n```", text[text.index(MARKER):], re.DOTALL)
    assert block, "no vector block after the marker"
    pairs = re.findall(r"^in:  (.*)\nout: (.*)$", block.group(1), re.MULTILINE)
    assert len(pairs) == block.group(1).count("in:  ")
    return pairs


VECTORS = _doc_vectors()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _privet(text: str) -> str:
    return canonical_json(json.loads(text, object_pairs_hook=_no_duplicates))


# --- an encoder written from docs/audit-format.md §1.1 alone (no json.dumps) ------------------
_SHORT = {0x22: '\\"', 0x5C: "\\\\", 0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"}


def _doc_string(text: str) -> str:
    out = ['"']
    for ch in text:
        cp = ord(ch)
        if cp in _SHORT:
            out.append(_SHORT[cp])
        elif 0x20 <= cp <= 0x7E:
            out.append(ch)
        elif 0xD800 <= cp <= 0xDFFF:
            raise ValueError("lone surrogate")
        elif cp < 0x10000:
            out.append(f"\\u{cp:04x}")
        else:
            v = cp - 0x10000
            out.append(f"\\u{0xD800 + (v >> 10):04x}\\u{0xDC00 + (v & 0x3FF):04x}")
    out.append('"')
    return "".join(out)


def _doc_encode(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _doc_string(value)
    if isinstance(value, list):
        return "[" + ",".join(_doc_encode(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: [ord(c) for c in k])  # code points, a prefix first
        return "{" + ",".join(_doc_string(k) + ":" + _doc_encode(value[k]) for k in keys) + "}"
    raise ValueError(f"{type(value).__name__} is not canonical")


def _doc(text: str) -> str:
    return _doc_encode(json.loads(text, object_pairs_hook=_no_duplicates))


@pytest.mark.parametrize(("given_json", "expected"), VECTORS, ids=[f"v{i}" for i in range(len(VECTORS))])
def test_document_vectors_byte_for_byte(given_json: str, expected: str) -> None:
    if expected.startswith("REFUSED"):
        for encoder in (_privet, _doc):
            with pytest.raises(ValueError):
                encoder(given_json)
        return
    produced = _privet(given_json)
    assert produced == expected
    assert produced.encode("ascii") == expected.encode("ascii")
    assert all(0x20 <= b <= 0x7E for b in produced.encode("ascii"))
    assert _doc(given_json) == expected  # the document alone suffices
    assert _privet(produced) == produced  # canonical JSON is a fixed point


def test_vectors_cover_what_the_document_promises() -> None:
    outs = "\n".join(out for _, out in VECTORS)
    for needle in ("\\u0000", "\\b", "\\t", "\\n", "\\f", "\\r", "\\u000b", "\\u001f", "\\u007f", '\\"', "\\\\",
                   "\\u00e9", "\\ud83d\\ude00", "\\uffff", "/"):
        assert needle in outs, needle
    assert sum(out.startswith("REFUSED") and "surrogate" in out for _, out in VECTORS) >= 4


scalar_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=("Cs",)), max_size=12)
any_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=12)  # surrogates too
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**80), 2**80) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)


def _outcome(encoder: Any, value: Any) -> str:
    try:
        return encoder(value)
    except ValueError:
        return "REFUSED"


@settings(max_examples=500, deadline=None)
@given(values)
def test_an_encoder_from_the_document_agrees_with_privet(value: Any) -> None:
    assert _outcome(canonical_json, value) == _outcome(_doc_encode, value)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(scalar_text, scalar_text, max_size=6))
def test_canonical_text_round_trips(value: dict[str, str]) -> None:
    text = canonical_json(value)
    assert json.loads(text) == value and canonical_json(json.loads(text)) == text


@pytest.mark.parametrize("value", [1.5, 1.0, float("nan"), {"a": [0.5]}, {1: "x"}, b"x", {"k": {2}}])
def test_canonical_json_refuses_what_json_cannot_say_canonically(value: Any) -> None:
    with pytest.raises(ValueError):
        canonical_json(value)


# --- the worked leaf with escapes (docs/audit-format.md §6) --------------------------------
ESCAPES_EVENT = EventRecord(
    seq=7,
    time_us=1750000000000007,
    principal="spiffe://privet.local/user/zo\u00eb",
    action="ingestion.CreateDataset",
    resource="dataset/Stra\u00dfe",
    decision="deny",
    policy_ids=("forbid-\u2028",),
    details={"note": 'tab\there\nquote" back\\ slash/ bell\x07 del\x7f', "emoji": "\U0001F600", "n": -42, "ok": True,
             "none": None, "list": [], "nested": {"\u00e9": 1, "Z": 2}},
)
ESCAPES_LEAF = (
    b'privet.audit.v1\n{"action":"ingestion.CreateDataset","decision":"deny","details":{"emoji":"\\ud83d\\ude00",'
    b'"list":[],"n":-42,"nested":{"Z":2,"\\u00e9":1},"none":null,"note":"tab\\there\\nquote\\" back\\\\ slash/ bell\\u0007 del\\u007f",'
    b'"ok":true},"policy_ids":["forbid-\\u2028"],"principal":"spiffe://privet.local/user/zo\\u00eb",'
    b'"resource":"dataset/Stra\\u00dfe","seq":7,"time_us":1750000000000007}'
)
ESCAPES_HASH = "68accd1c3a0ea092fe45afd3a70083c74a0578041af105c32229b7b315bc373b"


def test_leaf_with_control_characters_and_non_ascii() -> None:
    assert encode_leaf(ESCAPES_EVENT) == ESCAPES_LEAF
    assert leaf_hash(ESCAPES_LEAF).hex() == ESCAPES_HASH
    assert decode_leaf(ESCAPES_LEAF) == ESCAPES_EVENT
    doc = DOC.read_text(encoding="utf-8")
    assert ESCAPES_LEAF.decode("ascii") in doc and ESCAPES_HASH in doc
    body = ESCAPES_LEAF[len(LEAF_PREFIX):].decode("ascii")
    assert _doc(body) == body  # the independent encoder writes the same leaf


# --- lone surrogates: refused in verification ------------------------------------------------
def _leaf_with(**changes: Any) -> bytes:
    event = {**ESCAPES_EVENT.as_dict(), **changes}
    body = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return LEAF_PREFIX + body.encode("ascii")


@pytest.mark.parametrize(
    "changes",
    [
        {"principal": "user/\ud800"},
        {"resource": "model/\udfff"},
        {"policy_ids": ["p\ud83d"]},
        {"details": {"note": "\ude00\ud83d"}},
        {"details": {"\udc00": 1}},
        {"details": {"deep": [{"x": ["\udbff"]}]}},
    ],
    ids=["principal", "resource", "policy_ids", "reversed-pair", "key", "nested"],
)
def test_decode_leaf_refuses_a_lone_surrogate(changes: dict[str, Any]) -> None:
    leaf = _leaf_with(**changes)
    assert b"\\ud" in leaf
    with pytest.raises(ValueError, match="lone surrogate"):
        decode_leaf(leaf)


def test_decode_leaf_accepts_a_pair_and_hangul() -> None:
    leaf = _leaf_with(details={"emoji": "\U0001F600", "hangul": "\ud7a3\ud4cc"})
    assert decode_leaf(leaf).details["hangul"] == "\ud7a3\ud4cc"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda body: body.replace('"seq":7', '"seq":7.0'),
        lambda body: body.replace('"seq":7', '"seq":true'),
        lambda body: body.replace('"n":-42', '"n":-42,"n":-42'),
        lambda body: body.replace('"n":-42', '"n":NaN'),
        lambda body: body.replace('"decision":"deny",', ""),
        lambda body: body.replace('"decision":"deny"', '"decision":1'),
        lambda body: body.replace('"policy_ids":["forbid-\\u2028"]', '"policy_ids":"forbid"'),
    ],
    ids=["float-seq", "bool-seq", "duplicate", "nan", "missing", "int-decision", "str-policy-ids"],
)
def test_decode_leaf_refuses_non_canonical_forms(mutate: Any) -> None:
    body = ESCAPES_LEAF[len(LEAF_PREFIX):].decode("ascii")
    mutated = mutate(body)
    assert mutated != body
    with pytest.raises(ValueError):
        decode_leaf(LEAF_PREFIX + mutated.encode("ascii"))


# --- lone surrogates: refused on append, with a typed error ----------------------------------
def _empty_log() -> AuditLog:
    log = AuditLog(clock=lambda: 1750000000.0)
    log._edge = MerkleFrontier()  # an empty log, as a begin() on an empty database leaves it
    return log


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (Event("user/\ud800", "a", "r", "allow"), "principal"),
        (Event("user/a", "a\udc00", "r", "allow"), "action"),
        (Event("user/a", "a", "r\udbff", "allow"), "resource"),
        (Event("user/a", "a", "r", "allow\ud800"), "decision"),
        (Event("user/a", "a", "r", "deny", policy_ids=("ok", "p\ud800")), "policy_ids[1]"),
        (Event("user/a", "a", "r", "allow", details={"note": "x\udfff"}), "details.note"),
        (Event("user/a", "a", "r", "allow", details={"k\ud800": 1}), "details (a key)"),
        (Event("user/a", "a", "r", "allow", details={"deep": [{"x": 1.5, "y": "\ud83d"}]}), "details.deep[0].y"),
    ],
)
def test_append_refuses_a_lone_surrogate_with_a_typed_error(event: Event, field: str) -> None:
    log = _empty_log()
    with pytest.raises(InvalidArgument) as raised:
        log.append(event)
    assert raised.value.field == f"audit event {field}"
    assert "lone surrogate" in raised.value.message
    assert log._events == [] and log._edge.size == 0


def test_append_keeps_pairs_hangul_and_escaped_backslashes() -> None:
    log = _empty_log()
    details = {"emoji": "\U0001F600", "hangul": "\ud55c\uad6d\uc5b4", "literal": "\\ud800 is six characters"}
    log.append(Event("user/a", "a", "r", "allow", details=details))
    leaf = log._events[-1]["leaf"]
    assert decode_leaf(leaf).details == details

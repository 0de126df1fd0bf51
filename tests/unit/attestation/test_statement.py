"""The in-toto Statement v1: canonical bytes, strict parsing, and JSON that two readers
could understand differently (duplicate keys, deep nesting) rejected before it is read."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from privet.governance.attestation.dsse import AttestationInvalid
from privet.governance.attestation.statement import (
    MAX_JSON_DEPTH,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    loads_strict,
    parse_statement,
    release_statement,
    statement_bytes,
)

DIGEST = hashlib.sha256(b"weights").hexdigest()
PREDICATE = {"model": {"name": "churn", "version": 3}, "guarantee": {"epsilon": 3.0, "delta": 1e-5}, "note": "caf\u00e9"}


def _statement(**changes) -> dict:
    statement = release_statement(subject_name="model/churn/3", weights_sha256=DIGEST, predicate=dict(PREDICATE))
    statement.update(changes)
    return statement


def _raw(obj) -> bytes:
    return json.dumps(obj).encode()


def test_release_statement_has_the_statement_v1_shape():
    assert _statement() == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "model/churn/3", "digest": {"sha256": DIGEST}}],
        "predicateType": "https://privet.dev/attestations/model-release/v1",
        "predicate": PREDICATE,
    }
    assert STATEMENT_TYPE == "https://in-toto.io/Statement/v1"


def test_statement_bytes_are_canonical():
    data = statement_bytes(_statement())
    assert data.startswith(b'{"_type":"https://in-toto.io/Statement/v1","predicate":{"guarantee":{"delta":1e-05,"epsilon":3.0}')
    assert b" " not in data.replace(b"https://", b"")  # no insignificant white space
    assert "caf\u00e9".encode() in data  # UTF-8, not \\u escapes
    shuffled = dict(reversed(list(_statement().items())))
    assert statement_bytes(shuffled) == data


def test_statement_bytes_refuse_nan():
    with pytest.raises(ValueError):
        statement_bytes(_statement(predicate={"x": float("nan")}))


def test_parse_round_trips():
    statement = _statement()
    assert parse_statement(statement_bytes(statement)) == statement


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"subject_name": ""}, ValueError, "subject_name"),
        ({"weights_sha256": DIGEST.upper()}, ValueError, "64 lowercase hex"),
        ({"weights_sha256": DIGEST[:-1]}, ValueError, "64 lowercase hex"),
        ({"predicate": []}, TypeError, "predicate must be a dict"),
        ({"predicate": {"x": float("inf")}}, ValueError, "Out of range float"),
    ],
)
def test_release_statement_checks_its_arguments(kwargs, error, match):
    args = {"subject_name": "m", "weights_sha256": DIGEST, "predicate": {}} | kwargs
    with pytest.raises(error, match=match):
        release_statement(**args)


def test_release_statement_refuses_what_its_verifier_would_reject():
    deep: dict = {}
    for _ in range(MAX_JSON_DEPTH):
        deep = {"d": deep}
    with pytest.raises(ValueError, match="would not verify: .*nests deeper than 32"):
        release_statement(subject_name="m", weights_sha256=DIGEST, predicate=deep)


@pytest.mark.parametrize(
    ("statement", "match"),
    [
        (_statement(_type="https://in-toto.io/Statement/v0.1"), "_type is 'https://in-toto.io/Statement/v0.1'"),
        (_statement(predicateType="https://slsa.dev/provenance/v1"), "predicateType is 'https://slsa.dev/provenance/v1'"),
        (_statement(subject=[]), "exactly one subject"),
        (_statement(subject=_statement()["subject"] * 2), "exactly one subject"),
        (_statement(subject=[{"name": "m", "digest": {"sha256": DIGEST}, "uri": "x"}]), "exactly 'name' and 'digest'"),
        (_statement(subject=[{"name": "", "digest": {"sha256": DIGEST}}]), "subject has no name"),
        (_statement(subject=[{"name": "m", "digest": {"sha512": DIGEST * 2}}]), "exactly \\{'sha256'"),
        (_statement(subject=[{"name": "m", "digest": {"sha256": DIGEST[:-2]}}]), "sha256 is not 64 lowercase hex"),
        (_statement(subject=[{"name": "m", "digest": {"sha256": DIGEST.upper()}}]), "sha256 is not 64 lowercase hex"),
        (_statement(predicate=[1]), "predicate is not a JSON object"),
        (_statement(extra=1), "exactly the keys"),
        ([1, 2], "not a JSON object"),
    ],
)
def test_parse_names_what_is_wrong(statement, match):
    with pytest.raises(AttestationInvalid, match=match):
        parse_statement(_raw(statement))
    assert PREDICATE_TYPE  # the constant the message compares against


def test_duplicate_keys_are_rejected_at_any_level():
    good = statement_bytes(_statement())
    top = good[:-1] + b',"predicateType":"' + PREDICATE_TYPE.encode() + b'"}'
    with pytest.raises(AttestationInvalid, match="duplicate JSON key 'predicateType'"):
        parse_statement(top)
    nested = good.replace(b'"digest":{"sha256":', b'"digest":{"sha256":"' + b"0" * 64 + b'","sha256":')
    with pytest.raises(AttestationInvalid, match="duplicate JSON key 'sha256'"):
        parse_statement(nested)


def _nested(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"[1]" + b"}" * (depth - 1)


def test_nesting_up_to_the_limit_parses_and_one_more_is_rejected():
    assert loads_strict(_nested(MAX_JSON_DEPTH), "x")
    with pytest.raises(AttestationInvalid, match="nests deeper than 32 levels"):
        loads_strict(_nested(MAX_JSON_DEPTH + 1), "x")


def test_deep_nesting_in_a_statement_is_rejected_before_parsing():
    payload = statement_bytes(_statement(predicate={})).replace(b'"predicate":{}', b'"predicate":' + _nested(40))
    with pytest.raises(AttestationInvalid, match="the statement nests deeper than 32 levels"):
        parse_statement(payload)


def test_very_deep_nesting_costs_little_and_does_not_overflow_the_stack():
    start = time.perf_counter()
    with pytest.raises(AttestationInvalid, match="nests deeper"):
        loads_strict(b"[" * 1_000_000 + b"]" * 1_000_000, "x")
    assert time.perf_counter() - start < 2


def test_brackets_inside_strings_do_not_count_as_nesting():
    text = json.dumps({"s": "[[[[{{{{" * 20, "t": 'x\\"[[[[' * 20, "u": [["]]]]" * 20]]})
    assert loads_strict(text.encode(), "x")["u"] == [["]]]]" * 20]]


def test_a_run_of_escaped_quotes_is_scanned_in_linear_time():
    # An escape-aware string pattern would restart at every quote: quadratic.
    hostile = b'["' + b'\\"' * 1_000_000 + b"]"
    start = time.perf_counter()
    with pytest.raises(AttestationInvalid, match="is not JSON"):
        loads_strict(hostile, "x")
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b'{"x": NaN}', "NaN is not JSON"),
        (b'{"x": -Infinity}', "-Infinity is not JSON"),
        (b'{"x": 1', "is not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        ('{"x": "\u00e9"}'.encode("utf-16"), "not UTF-8"),
        (b"", "is not JSON"),
    ],
)
def test_loads_strict_rejects_non_json(data, match):
    with pytest.raises(AttestationInvalid, match=match):
        loads_strict(data, "x")

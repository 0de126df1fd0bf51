"""The in-toto Statement v1 a model release attestation carries, and strict JSON reading.

Statement v1 (https://in-toto.io/Statement/v1) binds a predicate (what is claimed) to a
subject (what it is claimed about, by digest):

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "model/churn/3", "digest": {"sha256": "<64 hex>"}}],
     "predicateType": "https://privet.dev/attestations/model-release/v1",
     "predicate": {...}}

A release attestation has exactly one subject: the model version's weights, named by the
SHA-256 of their plaintext (the digest the registry records at upload). The predicate's
fields are documented in docs/attestation.md.
"""

from __future__ import annotations

import json
import re
from typing import Any

from privet.governance.attestation.dsse import AttestationInvalid
from privet.governance.errors import InvalidArgument
from privet.governance.jsonlimits import (
    DuplicateKey,
    check_json_depth,
    object_without_duplicates,
)

__all__ = [
    "MAX_JSON_DEPTH",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "loads_strict",
    "parse_statement",
    "release_statement",
    "statement_bytes",
    "subject_digest",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://privet.dev/attestations/model-release/v1"

# The release predicate nests four or five levels; 32 is generous for it and far below
# where Python's recursive JSON decoder (and many readers downstream) give out.
MAX_JSON_DEPTH = 32

_STATEMENT_KEYS = frozenset({"_type", "subject", "predicateType", "predicate"})
_SUBJECT_KEYS = frozenset({"name", "digest"})
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

# For the depth pre-scan. Escapes go first so that what is left of a string holds no
# quote; then a string is simply quote, non-quotes, quote, which a regex finds in linear
# time (an escape-aware string pattern can go quadratic on a hostile run of escaped quotes).
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_JSON_STRING = re.compile(rb'"[^"]*"')
_INNERMOST_PAIR = re.compile(rb"[\[{][\]}]")
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def _reject_constant(name: str) -> Any:
    raise AttestationInvalid(f"{name} is not JSON")


def loads_strict(data: bytes | str, what: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse UTF-8 JSON that someone else wrote, rejecting what readers could disagree on:
    duplicate keys, NaN/Infinity, non-UTF-8 text, and nesting deeper than `max_depth`."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise AttestationInvalid(f"{what} is not UTF-8 text") from None
    try:
        check_json_depth(bytes(data), field=what, limit=max_depth)
    except InvalidArgument:
        raise AttestationInvalid(f"{what} nests deeper than {max_depth} levels") from None
    try:
        return json.loads(text, object_pairs_hook=object_without_duplicates, parse_constant=_reject_constant)
    except DuplicateKey as exc:
        raise AttestationInvalid(f"{what}: {exc}") from None
    except AttestationInvalid as exc:
        raise AttestationInvalid(f"{what}: {exc.message}") from None
    except (ValueError, RecursionError) as exc:
        raise AttestationInvalid(f"{what} is not JSON ({exc})") from None


def release_statement(*, subject_name: str, weights_sha256: str, predicate: dict[str, Any]) -> dict[str, Any]:
    """The Statement for a released model version whose weights hash to `weights_sha256`.

    Checked on the way out by the same parser verifiers use, so the registry never signs a
    statement that its own verifier would reject. Raises ValueError on bad arguments.
    """
    if not isinstance(subject_name, str) or not subject_name:
        raise ValueError("subject_name must be a non-empty string")
    if not isinstance(weights_sha256, str) or not _SHA256_HEX.fullmatch(weights_sha256):
        raise ValueError("weights_sha256 must be 64 lowercase hex digits")
    if not isinstance(predicate, dict):
        raise TypeError("predicate must be a dict")
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": {"sha256": weights_sha256}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }
    try:
        parse_statement(statement_bytes(statement))
    except AttestationInvalid as exc:
        raise ValueError(f"the statement would not verify: {exc.message}") from None
    return statement


def statement_bytes(statement: dict[str, Any]) -> bytes:
    """Canonical JSON: keys sorted, no insignificant white space, UTF-8, no NaN/Infinity.

    Canonical so that the same facts always give the same signed bytes (and the same
    payload digest), whichever process built the dict."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def parse_statement(payload: bytes) -> dict[str, Any]:
    """The Statement in a verified DSSE payload; AttestationInvalid unless it is a
    Statement v1 with exactly one subject (a name and a 64-hex sha256 digest) and the
    model-release predicate type. The predicate's fields are left to the verifier."""
    statement = loads_strict(payload, "the statement")
    if not isinstance(statement, dict):
        raise AttestationInvalid("the statement is not a JSON object")
    if set(statement) != _STATEMENT_KEYS:
        raise AttestationInvalid(f"the statement must have exactly the keys {sorted(_STATEMENT_KEYS)}")
    if statement["_type"] != STATEMENT_TYPE:
        raise AttestationInvalid(f"the statement's _type is {statement['_type']!r}, not {STATEMENT_TYPE!r}")
    if statement["predicateType"] != PREDICATE_TYPE:
        raise AttestationInvalid(f"the statement's predicateType is {statement['predicateType']!r}, not {PREDICATE_TYPE!r}")
    subjects = statement["subject"]
    if not isinstance(subjects, list) or len(subjects) != 1:
        raise AttestationInvalid("the statement must have exactly one subject")
    subject = subjects[0]
    if not isinstance(subject, dict) or set(subject) != _SUBJECT_KEYS:
        raise AttestationInvalid("the statement's subject must be an object with exactly 'name' and 'digest'")
    if not isinstance(subject["name"], str) or not subject["name"]:
        raise AttestationInvalid("the statement's subject has no name")
    digest = subject["digest"]
    if not isinstance(digest, dict) or set(digest) != {"sha256"}:
        raise AttestationInvalid("the statement's subject digest must be exactly {'sha256': ...}")
    if not isinstance(digest["sha256"], str) or not _SHA256_HEX.fullmatch(digest["sha256"]):
        raise AttestationInvalid("the statement's subject sha256 is not 64 lowercase hex digits")
    if not isinstance(statement["predicate"], dict):
        raise AttestationInvalid("the statement's predicate is not a JSON object")
    return statement


def subject_digest(statement: dict[str, Any]) -> str:
    """The sha256 hex of a statement that `parse_statement` accepted."""
    digest: str = statement["subject"][0]["digest"]["sha256"]
    return digest

"""Masking operators: each maps a pyarrow column (Array or ChunkedArray) to a new one of
the same length, nulls staying null. Profiles name them; `OPERATORS` is the registry
the profile loader checks names and parameters against, and this module's one job.

The operators themselves live by what they do: `redaction` (keep, redact, partial),
`hashing` (keyed hash, with `hash_memo`), `format_preserving` (FF1 tokens),
`generalise` (bins, dates, prefixes) and `free_text` (scan); all are re-exported here.
Operators that compute something per value (keyed hash, tokenisation) do it once per
distinct value: the column is dictionary-encoded, the dictionary transformed, and the
indices taken through it. Everything else is a pyarrow compute kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from privet.governance.errors import InvalidArgument
from privet.governance.masking._columns import Column
from privet.governance.masking.entities import PiiType
from privet.governance.masking.format_preserving import detokenise, tokenise
from privet.governance.masking.free_text import SCAN_MIN_SCORE, scan
from privet.governance.masking.generalise import generalise_date, generalise_numeric, generalise_prefix
from privet.governance.masking.hash_memo import HashMemo
from privet.governance.masking.hashing import keyed_hash
from privet.governance.masking.keys import MaskingKeys
from privet.governance.masking.redaction import DEFAULT_REDACTION, keep, partial_mask, redact

__all__ = [
    "OPERATORS",
    "HashMemo",
    "MaskingKeys",
    "OperatorContext",
    "OperatorSpec",
    "Param",
    "check_params",
    "detokenise",
    "generalise_date",
    "generalise_numeric",
    "generalise_prefix",
    "keep",
    "keyed_hash",
    "partial_mask",
    "redact",
    "scan",
    "tokenise",
]


@dataclass(frozen=True)
class OperatorContext:
    """What an operator may need besides its parameters."""

    column: str
    keys: MaskingKeys | None = None
    default_region: str = "US"
    # The score boost the column lends each type when scanned (ColumnClassification.context).
    context: Mapping[PiiType, float] = field(default_factory=dict)
    # Keyed hashes already computed for this column in earlier batches of the same upload
    # (value bytes -> digest), owned by the MaskingPlan and dropped with it: names and
    # addresses recur across batches, and a hit costs a dict lookup instead of an HMAC.
    memo: dict[bytes, bytes] | None = field(default=None, compare=False, repr=False)


# --- the registry the profile loader checks against --------------------------------------

@dataclass(frozen=True)
class Param:
    """One operator parameter: its accepted Python types, whether required, its default,
    and an extra check returning an error message (or None)."""

    types: tuple[type, ...]
    required: bool = False
    default: Any = None
    check: Callable[[Any], str | None] | None = None
    describe: str = ""


@dataclass(frozen=True)
class OperatorSpec:
    """A named operator. `apply(values, params, ctx)` returns the new column, or None to
    drop it. `needs` names the key it requires. `check` validates the parameters together
    (e.g. exactly one of several)."""

    name: str
    apply: Callable[[Column, Mapping[str, Any], OperatorContext], Column | None]
    params: Mapping[str, Param] = field(default_factory=dict)
    needs: str | None = None
    check: Callable[[Mapping[str, Any]], tuple[str, str] | None] | None = None
    doc: str = ""


def _positive_int(x: Any) -> str | None:
    return None if x >= 0 else "must be ≥ 0"


def _one_char(x: Any) -> str | None:
    return None if len(x) == 1 else "must be one character"


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    return lambda x: None if x in choices else "expected one of " + ", ".join(repr(c) for c in choices)


def _pii_types(x: Any) -> str | None:
    bad = [t for t in x if not isinstance(t, str) or t not in PiiType.__members__]
    return f"unknown PII type(s): {', '.join(map(str, bad))}" if bad else None


def _partial_check(p: Mapping[str, Any]) -> tuple[str, str] | None:
    if not p.get("keep_first") and not p.get("keep_last"):
        return ("action", "partial needs keep_last or keep_first")
    return None


_GENERALISERS = ("bins", "date", "prefix")


def _generalise_check(p: Mapping[str, Any]) -> tuple[str, str] | None:
    given = [k for k in _GENERALISERS if p.get(k) is not None]
    if len(given) != 1:
        return ("action", "generalise needs exactly one of bins (width), date (month|year), prefix (length)")
    return None


def _need_key(ctx: OperatorContext, which: str) -> bytes:
    key: bytes | None = getattr(ctx.keys, which, None) if ctx.keys is not None else None
    if key is None:
        raise InvalidArgument(f"keys.{which}", f"required to mask column {ctx.column!r}")
    return key


def _apply_generalise(values: Column, p: Mapping[str, Any], _ctx: OperatorContext) -> Column:
    if p.get("bins") is not None:
        return generalise_numeric(values, p["bins"])
    if p.get("date") is not None:
        return generalise_date(values, p["date"])
    return generalise_prefix(values, p["prefix"])


def _apply_scan(values: Column, p: Mapping[str, Any], ctx: OperatorContext) -> Column:
    key = _need_key(ctx, "hash_key") if p["replace"] == "pseudonym" else None
    return scan(values, replace=p["replace"], key=key, types=p.get("types"),
                min_score=p["min_score"], default_region=ctx.default_region, context=ctx.context)


OPERATORS: Mapping[str, OperatorSpec] = {spec.name: spec for spec in (
    OperatorSpec("keep", lambda v, p, c: v, doc="leave the column as it is"),
    OperatorSpec("drop", lambda v, p, c: None, doc="remove the column"),
    OperatorSpec(
        "redact", lambda v, p, c: redact(v, p["token"]),
        {"token": Param((str,), default=DEFAULT_REDACTION)}, doc="replace every value by a fixed token"),
    OperatorSpec(
        "partial",
        lambda v, p, c: partial_mask(v, keep_first=p["keep_first"], keep_last=p["keep_last"], mask_char=p["mask_char"]),
        {"keep_first": Param((int,), default=0, check=_positive_int),
         "keep_last": Param((int,), default=0, check=_positive_int),
         "mask_char": Param((str,), default="*", check=_one_char)},
        check=_partial_check, doc="mask all but the first/last characters"),
    OperatorSpec(
        "hash", lambda v, p, c: keyed_hash(v, _need_key(c, "hash_key"), length=p["length"], normalize=p["normalize"],
                                           memo=c.memo),
        {"length": Param((int,), default=32, check=lambda x: None if 8 <= x <= 64 else "must be 8..64"),
         "normalize": Param((str,), default=None, check=_one_of("lower", "digits", "mac"))},
        needs="hash_key", doc="HMAC-SHA256 under the dataset's key, hex"),
    OperatorSpec(
        "tokenise",
        lambda v, p, c: tokenise(v, _need_key(c, "token_key"), tweak=p["tweak"] or c.column, alphabet=p["alphabet"]),
        {"alphabet": Param((str,), default="digits", check=_one_of("digits", "alnum")),
         "tweak": Param((str,), default=None)},
        needs="token_key", doc="format-preserving encryption (FF1), reversible with the key"),
    OperatorSpec(
        "generalise", _apply_generalise,
        {"bins": Param((int, float), check=lambda x: None if x > 0 else "must be > 0"),
         "date": Param((str,), check=_one_of("month", "year")),
         "prefix": Param((int,), check=_positive_int)},
        check=_generalise_check, doc="numeric bins, date truncation or a string prefix"),
    OperatorSpec(
        "scan", _apply_scan,
        {"replace": Param((str,), default="token", check=_one_of("token", "pseudonym")),
         "types": Param((list,), default=None, check=_pii_types),
         "min_score": Param((int, float), default=SCAN_MIN_SCORE,
                            check=lambda x: None if 0 <= x <= 1 else "must be in [0, 1]")},
        doc="replace each entity in free text by its type token or a keyed pseudonym"),
)}


def check_params(name: str, given: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validate an operator name and its parameters as written in a profile rule; return
    the parameters with defaults filled in. Errors name the field: `where.action`,
    `where.<param>`. Raises InvalidArgument."""
    spec = OPERATORS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise InvalidArgument(f"{where}.action", f"unknown operator {name!r}; known: {', '.join(OPERATORS)}")
    params: dict[str, Any] = {}
    for key, value in given.items():
        param = spec.params.get(key)
        if param is None:
            known = ", ".join(spec.params) or "none"
            raise InvalidArgument(f"{where}.{key}", f"unknown parameter for {name!r}; it takes: {known}")
        if isinstance(value, bool) or not isinstance(value, param.types):
            want = " or ".join("number" if t is float else t.__name__ for t in param.types)
            raise InvalidArgument(f"{where}.{key}", f"expected {want}, got {type(value).__name__} {value!r}")
        if param.check is not None and (problem := param.check(value)):
            raise InvalidArgument(f"{where}.{key}", problem)
        params[key] = value
    for key, param in spec.params.items():
        if key not in params:
            if param.required:
                raise InvalidArgument(f"{where}.{key}", f"required by operator {name!r}")
            params[key] = param.default
    if spec.check is not None and (joint := spec.check(params)):
        raise InvalidArgument(f"{where}.{joint[0]}", joint[1])
    return params

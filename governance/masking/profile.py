"""Masking profiles: which operator each column gets, applied to a table.

A profile (YAML, `policies/masking/*.yaml`):

    domain: crm                  # optional pseudonymisation domain (the caller picks keys by it)
    default_region: GB           # how phone numbers without a country code are read
    rules:
      - {column: notes, action: scan, replace: pseudonym}
      - {pii_type: EMAIL, action: hash}
      - {pii_type: PHONE, action: partial, keep_last: 2}
    quasi_identifiers:           # hierarchies for k-anonymity, by column name
      age: {bins: [5, 10, 20]}
      zip: {prefix: [4, 3, 2]}
      birth_date: {date: [month, year]}
    max_suppression: 0.05

A rule names a `column` or a detected `pii_type` and an `action` (an operator from
`operators.OPERATORS`) with that operator's parameters beside it. Column rules win over
type rules. A column no rule names is classified; if it holds PII, the rule for its type
applies, and if there is none, `apply_profile` raises FailedPrecondition naming the
column and the types found, before anything is masked (the safety net).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import phonenumbers
import pyarrow as pa
import yaml

from privet.governance.errors import FailedPrecondition, InvalidArgument
from privet.governance.masking.detect import (
    DEFAULT_MIN_SHARE,
    DEFAULT_SAMPLE,
    ColumnClassification,
    classify_column,
)
from privet.governance.masking.entities import PiiType
from privet.governance.masking.kanon import Hierarchy, KAnonymityReport, k_anonymise
from privet.governance.masking.operators import (
    OPERATORS,
    HashMemo,
    MaskingKeys,
    OperatorContext,
    check_params,
)

__all__ = [
    "ColumnPreview",
    "ColumnReport",
    "MaskingPlan",
    "MaskingProfile",
    "MaskingReport",
    "Rule",
    "apply_profile",
    "load_profile",
    "parse_profile",
    "plan_masking",
    "preview",
    "require_unique_columns",
]

_TOP_KEYS = ("name", "description", "domain", "default_region", "sample", "min_share", "max_suppression",
             "rules", "quasi_identifiers")
_RULE_KEYS = ("column", "pii_type", "action")
_DOMAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_FALLBACK_HIERARCHY = Hierarchy("suppress")


@dataclass(frozen=True)
class Rule:
    """One profile rule: exactly one of `column` / `pii_type`, the operator `action`, and
    its parameters (defaults filled in). `where` is how errors and reports name it."""

    index: int
    action: str
    params: Mapping[str, Any]
    column: str | None = None
    pii_type: PiiType | None = None

    @property
    def where(self) -> str:
        return f"rules[{self.index}]"

    def covers(self, found: Sequence[PiiType]) -> list[PiiType]:
        """The found types this rule leaves unmasked: for a `scan` limited to some types,
        the others."""
        if self.action == "scan" and self.params.get("types"):
            wanted = {PiiType(t) for t in self.params["types"]}
            return [t for t in found if t not in wanted and t is not PiiType.FREE_TEXT]
        return []


@dataclass(frozen=True)
class MaskingProfile:
    """A parsed, validated profile. Build with `load_profile` or `parse_profile`."""

    rules: tuple[Rule, ...]
    quasi_identifiers: Mapping[str, Hierarchy] = field(default_factory=dict)
    domain: str | None = None
    default_region: str = "US"
    sample: int = DEFAULT_SAMPLE
    min_share: float = DEFAULT_MIN_SHARE
    max_suppression: float = 0.05
    name: str = ""

    def rule_for_column(self, column: str) -> Rule | None:
        return next((r for r in self.rules if r.column == column), None)

    def rule_for_type(self, pii_type: PiiType) -> Rule | None:
        return next((r for r in self.rules if r.pii_type is pii_type), None)

    def hierarchies(self, quasi_identifiers: Sequence[str]) -> dict[str, Hierarchy]:
        """The hierarchy for each quasi-identifier; one the profile does not give is
        either kept or withheld (`{suppress: true}`)."""
        return {q: self.quasi_identifiers.get(q, _FALLBACK_HIERARCHY) for q in quasi_identifiers}


# --- loading -----------------------------------------------------------------------------

def load_profile(path: str | Path) -> MaskingProfile:
    """Read and validate a YAML profile. Raises NotFound-like OSError from the filesystem,
    InvalidArgument for bad YAML or any invalid field (naming it: `rules[3].action`)."""
    path = Path(path)
    return parse_profile(path.read_text(encoding="utf-8"), name=path.stem)


def parse_profile(source: str | Mapping[str, Any], *, name: str = "") -> MaskingProfile:
    """Validate a profile given as YAML text or an already-parsed mapping."""
    if isinstance(source, str):
        try:
            data = yaml.safe_load(source)
        except (yaml.YAMLError, RecursionError) as exc:
            raise InvalidArgument("profile", f"not valid YAML: {exc}") from None
    else:
        data = source
    if not isinstance(data, Mapping):
        raise InvalidArgument("profile", "expected a mapping at the top level")
    for key in data:
        if key not in _TOP_KEYS:
            raise InvalidArgument(str(key), f"unknown profile key; expected one of {', '.join(_TOP_KEYS)}")

    domain = data.get("domain")
    if domain is not None and (not isinstance(domain, str) or not _DOMAIN.fullmatch(domain)):
        raise InvalidArgument("domain", "expected a name of letters, digits, '.', '_' or '-' (at most 64)")
    region = data.get("default_region", "US")
    if not isinstance(region, str) or region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidArgument("default_region", f"expected an ISO 3166 region code such as US or GB, got {region!r}")
    sample = data.get("sample", DEFAULT_SAMPLE)
    if not isinstance(sample, int) or isinstance(sample, bool) or sample < 1:
        raise InvalidArgument("sample", "expected a positive integer")
    min_share = data.get("min_share", DEFAULT_MIN_SHARE)
    if not isinstance(min_share, (int, float)) or isinstance(min_share, bool) or not 0 < min_share <= 1:
        raise InvalidArgument("min_share", "expected a share in (0, 1]")
    max_suppression = data.get("max_suppression", 0.05)
    if not isinstance(max_suppression, (int, float)) or isinstance(max_suppression, bool) \
            or not 0 <= max_suppression <= 1:
        raise InvalidArgument("max_suppression", "expected a share in [0, 1]")

    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        raise InvalidArgument("rules", "expected a list")
    rules = tuple(_parse_rule(i, raw) for i, raw in enumerate(raw_rules))
    _check_duplicates(rules)

    raw_qis = data.get("quasi_identifiers") or {}
    if not isinstance(raw_qis, Mapping):
        raise InvalidArgument("quasi_identifiers", "expected a mapping of column name to hierarchy")
    qis = {str(col): Hierarchy.parse(spec, f"quasi_identifiers.{col}") for col, spec in raw_qis.items()}

    return MaskingProfile(rules, qis, domain, region.upper(), sample, float(min_share), float(max_suppression),
                          str(data.get("name") or name))


def _parse_rule(i: int, raw: Any) -> Rule:
    where = f"rules[{i}]"
    if not isinstance(raw, Mapping):
        raise InvalidArgument(where, "expected a mapping with column or pii_type, and action")
    column, pii_type = raw.get("column"), raw.get("pii_type")
    if (column is None) == (pii_type is None):
        raise InvalidArgument(where, "name exactly one of column or pii_type")
    if column is not None and (not isinstance(column, str) or not column):
        raise InvalidArgument(f"{where}.column", "expected a column name")
    parsed_type = None
    if pii_type is not None:
        try:
            parsed_type = PiiType(pii_type)
        except ValueError:
            raise InvalidArgument(f"{where}.pii_type",
                                  f"unknown PII type {pii_type!r}; known: {', '.join(t.value for t in PiiType)}") from None
    if "action" not in raw:
        raise InvalidArgument(f"{where}.action", "missing")
    action = raw["action"]
    params = check_params(action, {k: v for k, v in raw.items() if k not in _RULE_KEYS}, where)
    return Rule(i, action, params, column, parsed_type)


def _check_duplicates(rules: Sequence[Rule]) -> None:
    seen: dict[Any, Rule] = {}
    for rule in rules:
        key = ("column", rule.column) if rule.column is not None else ("type", rule.pii_type)
        if key in seen:
            field_name = "column" if rule.column is not None else "pii_type"
            raise InvalidArgument(f"{rule.where}.{field_name}", f"{key[1]!s} already has a rule: {seen[key].where}")
        seen[key] = rule


# --- planning ------------------------------------------------------------------------------

@dataclass
class ColumnReport:
    """What happened to one input column."""

    column: str
    action: str                 # operator name, or "k-anonymity"
    rule: str | None            # "rules[3]", None when no rule applied
    reason: str
    pii_types: list[str] = field(default_factory=list)
    kind: str = ""


@dataclass
class MaskingReport:
    """What `apply_profile` did: per column, and k-anonymity if asked for. `key_id` is
    the version of the keys used (never the keys)."""

    profile: str
    domain: str | None
    key_id: str
    rows_in: int
    rows_out: int
    columns: list[ColumnReport]
    k_anonymity: KAnonymityReport | None = None

    @property
    def dropped(self) -> list[str]:
        return [c.column for c in self.columns if c.action == "drop"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Plan:
    column: str
    rule: Rule | None
    reason: str
    classification: ColumnClassification | None = None
    quasi_identifier: bool = False
    problem: str | None = None

    @property
    def action(self) -> str:
        if self.quasi_identifier:
            return "k-anonymity"
        return self.rule.action if self.rule else "keep"

    def report(self) -> ColumnReport:
        cls = self.classification
        return ColumnReport(self.column, self.action, self.rule.where if self.rule else None, self.reason,
                            [t.value for t in cls.found] if cls else [], cls.kind if cls else "")


def _plan(table: pa.Table, profile: MaskingProfile, quasi_identifiers: Sequence[str]) -> list[_Plan]:
    names = table.column_names
    require_unique_columns(names)
    for each in profile.rules:
        if each.column is not None and each.column not in names:
            raise InvalidArgument(f"{each.where}.column", f"no column {each.column!r} in the table")
    for qi in quasi_identifiers:
        if qi not in names:
            raise InvalidArgument("quasi_identifiers", f"no column {qi!r} in the table")
        named = profile.rule_for_column(qi)
        if named is not None:
            raise InvalidArgument(f"{named.where}.column",
                                  f"{qi!r} is a quasi-identifier: k-anonymity generalises it, a rule cannot also mask it")
    plans = []
    for name in names:
        if name in quasi_identifiers:
            plans.append(_Plan(name, None, "quasi-identifier", quasi_identifier=True))
            continue
        rule = profile.rule_for_column(name)
        if rule is not None:
            plans.append(_Plan(name, rule, f"named by {rule.where}"))
            continue
        cls = classify_column(name, table.column(name), sample=profile.sample, default_region=profile.default_region,
                              min_share=profile.min_share, full_scan=True)
        plans.append(_plan_unnamed(name, cls, profile))
    return plans


def require_unique_columns(names: Sequence[str]) -> None:
    """InvalidArgument naming the first repeated column: rules, plans and reports (and every
    later stage of an upload) pick columns by name, so a repeated one would be ambiguous."""
    seen: set[str] = set()
    for position, name in enumerate(names, start=1):
        if name in seen:
            raise InvalidArgument(name, f"column {name!r} appears more than once (again as column #{position}); "
                                        "column names must be unique")
        seen.add(name)


def _plan_unnamed(name: str, cls: ColumnClassification, profile: MaskingProfile) -> _Plan:
    if cls.kind == "opaque":
        return _Plan(name, None, "binary or nested values", cls,
                     problem="holds binary or nested values the detectors cannot read; name it in a rule")
    if cls.pii_type is None:
        return _Plan(name, None, "no PII found", cls)
    found = ", ".join(t.value for t in cls.found)
    rule = profile.rule_for_type(cls.pii_type)
    missing = [t for t in cls.found if profile.rule_for_type(t) is None]
    if cls.pii_type is PiiType.FREE_TEXT:
        missing = [] if rule is None else rule.covers(cls.found)
    if rule is None or missing:
        uncovered = ", ".join(t.value for t in (missing or [cls.pii_type]))
        return _Plan(name, None, f"holds {found}", cls,
                     problem=f"holds PII ({found}) and no rule covers {uncovered}")
    share = cls.shares.get(cls.pii_type)
    detail = f" in {share:.0%} of sampled cells" if share is not None else ""
    return _Plan(name, rule, f"classified {cls.pii_type.value}{detail}; {found}", cls)


def _needed_keys(plans: Sequence[_Plan], keys: MaskingKeys | None) -> None:
    for plan in plans:
        if plan.rule is None:
            continue
        need = OPERATORS[plan.rule.action].needs
        if plan.rule.action == "scan" and plan.rule.params.get("replace") == "pseudonym":
            need = "hash_key"
        if need and (keys is None or getattr(keys, need) is None):
            raise InvalidArgument(f"keys.{need}",
                                  f"required by {plan.rule.where} ({plan.rule.action}) for column {plan.column!r}")


def _mask_column(values: pa.ChunkedArray, plan: _Plan, profile: MaskingProfile,
                 keys: MaskingKeys | None, memo: dict[bytes, bytes] | None = None) -> pa.ChunkedArray | pa.Array | None:
    if plan.rule is None:
        return values
    spec = OPERATORS[plan.rule.action]
    ctx = OperatorContext(plan.column, keys, profile.default_region, memo)
    try:
        return spec.apply(values, plan.rule.params, ctx)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{plan.rule.where}.action", f"column {plan.column!r}: {exc.message}") from None


@dataclass(frozen=True, eq=False)
class MaskingPlan:
    """What masking does to each column, decided once by `plan_masking` (rules, and
    classification of the columns no rule names) and then applied to any number of
    batches with the same columns: a streaming caller plans on its first batch (or a
    sample) so that every batch of one dataset is masked alike."""

    profile: MaskingProfile
    keys: MaskingKeys | None
    quasi_identifiers: tuple[str, ...]
    _plans: tuple[_Plan, ...]
    # Per column, keyed hashes of values seen in earlier batches (see OperatorContext.memo).
    # They hold raw values, so they live only as long as this plan and are never pickled:
    # each worker process starts its own.
    _memos: dict[str, HashMemo] = field(default_factory=dict, init=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_memos": {}}

    def forget_values(self) -> None:
        """Drop the raw values the memos hold (call once the last batch is masked)."""
        self._memos.clear()

    @property
    def columns(self) -> list[ColumnReport]:
        """Per input column: action, rule, reason, PII types found."""
        return [p.report() for p in self._plans]

    @property
    def output_columns(self) -> list[str]:
        return [p.column for p in self._plans if p.action != "drop"]

    def mask(self, batch: pa.Table | pa.RecordBatch) -> pa.Table:
        """Apply the planned operators to `batch` (quasi-identifiers pass through: they
        are k-anonymity's to generalise). Requires the planned columns, in order.
        Raises InvalidArgument for other columns, or for values an operator cannot take
        (naming the rule)."""
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        expected = [p.column for p in self._plans]
        if table.column_names != expected:
            raise InvalidArgument("columns", f"expected columns {expected}, got {table.column_names}")
        out = table.select([])  # keeps the row count even if every column is dropped
        for plan in self._plans:
            memo = self._memos.setdefault(plan.column, HashMemo())
            masked = _mask_column(table.column(plan.column), plan, self.profile, self.keys, memo)
            if masked is not None:
                out = out.append_column(plan.column, masked)
        return out

    def verify(self, batch: pa.Table | pa.RecordBatch) -> None:
        """Re-classify, with a full scan, the columns the plan keeps because no PII was
        found when it was made: a streaming caller runs this on every later batch so PII
        that first appears there still stops ingestion. Raises FailedPrecondition naming
        each such column and the types now found (and the rule that would cover them, if
        any, so the caller can re-plan); InvalidArgument for other columns."""
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        expected = [p.column for p in self._plans]
        if table.column_names != expected:
            raise InvalidArgument("columns", f"expected columns {expected}, got {table.column_names}")
        problems = []
        for plan in self._plans:
            if plan.rule is not None or plan.quasi_identifier:
                continue
            cls = classify_column(plan.column, table.column(plan.column), sample=self.profile.sample,
                                  default_region=self.profile.default_region, min_share=self.profile.min_share,
                                  full_scan=True)
            if cls.is_pii:
                found = ", ".join(t.value for t in cls.found)
                problems.append(f"column {plan.column!r} holds PII ({found}) in a later batch, "
                                f"but the masking plan keeps it")
        if problems:
            raise FailedPrecondition("; ".join(problems))

    def report(self, rows_in: int, rows_out: int, k_anonymity: KAnonymityReport | None = None) -> MaskingReport:
        return MaskingReport(self.profile.name, self.profile.domain, self.keys.key_id if self.keys else "",
                             rows_in, rows_out, self.columns, k_anonymity)


def plan_masking(table: pa.Table, profile: MaskingProfile, keys: MaskingKeys | None, *,
                 quasi_identifiers: Sequence[str] = ()) -> MaskingPlan:
    """Decide each column's treatment from `table` (a whole table, or a representative
    first batch): its rule, or for a column no rule names, the rule for the PII type it
    is classified as. `quasi_identifiers` are left to k-anonymity.

    Raises InvalidArgument for a rule naming a missing column, a quasi-identifier that is
    missing or also named by a rule, or a key a rule needs but `keys` lacks;
    FailedPrecondition naming every column that holds PII no rule covers (or whose
    binary/nested values cannot be read) and the types found."""
    plans = _plan(table, profile, list(quasi_identifiers))
    problems = [f"column {p.column!r} {p.problem}" for p in plans if p.problem]
    if problems:
        raise FailedPrecondition("; ".join(problems))
    _needed_keys(plans, keys)
    return MaskingPlan(profile, keys, tuple(quasi_identifiers), tuple(plans))


def apply_profile(table: pa.Table, profile: MaskingProfile, keys: MaskingKeys | None, *,
                  quasi_identifiers: Sequence[str] = (), k: int = 1, l_diversity: tuple[str, int] | None = None,
                  max_suppression: float | None = None) -> tuple[pa.Table, MaskingReport]:
    """Mask `table` as `profile` says, then (with `quasi_identifiers` and k > 1, or
    `l_diversity` = (sensitive column, ℓ)) make it k-anonymous over them along the
    profile's hierarchies; a quasi-identifier the profile gives no hierarchy for is
    either kept or withheld as `*`. Without k-anonymity, quasi-identifiers are masked like
    any other column. `keys` holds the HMAC/FF1 keys; the caller owns their storage.

    Raises as `plan_masking` (nothing is masked before all checks pass), InvalidArgument
    for input an operator cannot take (naming the rule), and FailedPrecondition when k
    cannot be met within the suppression bound (`max_suppression`, default the
    profile's)."""
    anonymise = bool(quasi_identifiers) and (k > 1 or l_diversity is not None)
    qis = tuple(quasi_identifiers) if anonymise else ()
    plan = plan_masking(table, profile, keys, quasi_identifiers=qis)
    masked = plan.mask(table)
    kreport = None
    if anonymise:
        sensitive, ell = l_diversity if l_diversity is not None else (None, 1)
        bound = profile.max_suppression if max_suppression is None else max_suppression
        masked, kreport = k_anonymise(masked, profile.hierarchies(qis), k, max_suppression=bound,
                                      sensitive=sensitive, l=ell)
    return masked, plan.report(table.num_rows, masked.num_rows, kreport)


# --- preview -------------------------------------------------------------------------------

@dataclass
class ColumnPreview:
    """One column of a preview: the action that would apply and sample values before and
    after (`masked` is None for a dropped column, a quasi-identifier, or a column the
    profile does not cover, whose `problem` says why ingestion would fail)."""

    column: str
    action: str
    rule: str | None
    reason: str
    pii_types: list[str]
    original: list[Any]
    masked: list[Any] | None
    problem: str | None = None


def preview(table: pa.Table, profile: MaskingProfile, keys: MaskingKeys | None, rows: int = 20, *,
            quasi_identifiers: Sequence[str] = ()) -> list[ColumnPreview]:
    """What each column would become, on the first `rows` rows; classification still
    samples the whole table. Never raises for uncovered PII (it reports it per column);
    raises InvalidArgument as `apply_profile` does for a broken profile or missing key."""
    plans = _plan(table, profile, list(quasi_identifiers))
    _needed_keys(plans, keys)
    head = table.slice(0, max(0, rows))
    out = []
    for plan in plans:
        original = head.column(plan.column).to_pylist()
        masked: list[Any] | None = None
        if not plan.problem and not plan.quasi_identifier:
            result = _mask_column(head.column(plan.column), plan, profile, keys)
            masked = result.to_pylist() if result is not None else None
        info = plan.report()
        out.append(ColumnPreview(plan.column, info.action, info.rule, info.reason, info.pii_types, original,
                                 masked, plan.problem))
    return out

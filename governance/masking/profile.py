"""Masking profiles: which operator each column gets, applied to a table.

A profile (YAML, `policies/masking/*.yaml`):

    domain: crm                  # optional pseudonymisation domain (the caller picks keys by it)
    default_region: GB           # how phone numbers without a country code are read
    regions: [GB, IE, FR]        # or several, tried in order (default_region first if both)
    rules:
      - {column: notes, action: scan, replace: pseudonym}
      - {pii_type: EMAIL, action: hash}
      - {pii_type: PHONE, action: partial, keep_last: 2}
    quasi_identifiers:           # hierarchies for k-anonymity, by column name
      age: {bins: [5, 10, 20]}
      zip: {prefix: [4, 3, 2]}
      birth_date: {date: [month, year]}
      region: {tree: {Europe: [France, Germany], Asia: [Japan]}}
      income: {auto: true}       # as for one left out: derived from its values (bands, prefixes, dates)
    max_suppression: 0.05
    t_closeness: 0.2             # optional: each class's sensitive values within EMD t of the table's

A rule names a `column` or a detected `pii_type` and an `action` (an operator from
`operators.OPERATORS`) with that operator's parameters beside it. Column rules win over
type rules. A column no rule names is classified; if it holds PII, the rule for its type
applies, and if there is none, `apply_profile` raises FailedPrecondition naming the
column and the types found, before anything is masked (the safety net).

This module reads and checks profiles; `plan` decides and applies what a profile does to
a table, and its names are re-exported here for the callers that import them from here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import phonenumbers
import yaml

from privet.governance.errors import InvalidArgument
from privet.governance.masking.classify import DEFAULT_MIN_SHARE, DEFAULT_SAMPLE
from privet.governance.masking.entities import PiiType
from privet.governance.masking.kanon import Hierarchy
from privet.governance.masking.operators import check_params
from privet.governance.masking.plan import (
    ColumnPreview,
    ColumnReport,
    MaskingPlan,
    MaskingReport,
    apply_profile,
    plan_masking,
    preview,
    require_unique_columns,
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

_TOP_KEYS = ("name", "description", "domain", "default_region", "regions", "sample", "min_share", "max_suppression",
             "rules", "quasi_identifiers", "t_closeness")
_RULE_KEYS = ("column", "pii_type", "action")
_DOMAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_FALLBACK_HIERARCHY = Hierarchy("auto")  # derived from the data when k-anonymity plans


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
    # How numbers written without a country code are read: one ISO 3166 code, or several
    # joined by commas (`default_region` and `regions`), tried in order.
    default_region: str = "US"
    sample: int = DEFAULT_SAMPLE
    min_share: float = DEFAULT_MIN_SHARE
    max_suppression: float = 0.05
    name: str = ""
    t_closeness: float | None = None

    def rule_for_column(self, column: str) -> Rule | None:
        return next((r for r in self.rules if r.column == column), None)

    def rule_for_type(self, pii_type: PiiType) -> Rule | None:
        return next((r for r in self.rules if r.pii_type is pii_type), None)

    def hierarchies(self, quasi_identifiers: Sequence[str]) -> dict[str, Hierarchy]:
        """The hierarchy for each quasi-identifier; one the profile does not give is
        derived from the data (`{auto: true}`, `hierarchy_defaults`)."""
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
    region = _regions(data)
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
    t = data.get("t_closeness")
    if t is not None and (not isinstance(t, (int, float)) or isinstance(t, bool) or not 0 < t <= 1):
        raise InvalidArgument("t_closeness", "expected a distance in (0, 1]")

    return MaskingProfile(rules, qis, domain, region, sample, float(min_share), float(max_suppression),
                          str(data.get("name") or name), None if t is None else float(t))


def _regions(data: Mapping[str, Any]) -> str:
    """`default_region` and `regions` as the one region argument the detectors take: ISO
    3166 codes joined by commas, the default first (validators.regions_of)."""
    first = data.get("default_region")
    if first is not None and (not isinstance(first, str) or first.upper() not in phonenumbers.SUPPORTED_REGIONS):
        raise InvalidArgument("default_region", f"expected an ISO 3166 region code such as US or GB, got {first!r}")
    listed = data.get("regions", [])
    if not isinstance(listed, list):
        raise InvalidArgument("regions", "expected a list of ISO 3166 region codes such as [JP, IT]")
    for i, code in enumerate(listed):
        if not isinstance(code, str) or code.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise InvalidArgument(f"regions[{i}]", f"expected an ISO 3166 region code such as JP or IT, got {code!r}")
    codes = [c.upper() for c in ([first] if first else []) + listed]
    return ",".join(dict.fromkeys(codes)) or "US"


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


"""Plan and apply a masking profile: each column's treatment decided once (its rule, or the
rule for the PII type it is classified as), then applied to any number of batches; with
k-anonymity over the quasi-identifiers when asked for; and previews and reports of it.

Raises before anything is masked when a column holds PII no rule covers (the safety net).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from privet.governance.errors import FailedPrecondition, InvalidArgument
from privet.governance.masking.classify import ColumnClassification, classify_column
from privet.governance.masking.entities import TEXT_TYPES, PiiType
from privet.governance.masking.free_text import SCAN_MIN_SCORE, replace_entities, scan_text
from privet.governance.masking.hash_memo import HashMemo
from privet.governance.masking.kanon import KAnonymityReport, k_anonymise
from privet.governance.masking.keys import MaskingKeys
from privet.governance.masking.operators import OPERATORS, OperatorContext

if TYPE_CHECKING:  # profile re-exports this module's names, so it cannot be imported from here at run time
    from privet.governance.masking.profile import MaskingProfile, Rule

__all__ = [
    "ColumnPreview",
    "ColumnReport",
    "MaskingPlan",
    "MaskingReport",
    "apply_profile",
    "plan_masking",
    "preview",
    "require_unique_columns",
]


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


# What a column's name may not hold: a pivoted table with one column per customer stores
# its header as it is, and no rule masks a name.
_NAME_TYPES = tuple(t for t in TEXT_TYPES if t not in (PiiType.DATE, PiiType.URL, PiiType.POSTAL_CODE, PiiType.ADDRESS))


def _personal_column_names(names: Sequence[str], region: str) -> list[str]:
    """A problem for each column whose name holds an identifier (an email, a phone, a card,
    a national id): found with the patterns, as in a cell of text."""
    found = scan_text(pa.array(list(names), pa.string()), default_region=region, types=_NAME_TYPES)
    return [f"column #{i + 1}'s name holds personal data ({', '.join(sorted({f.type.value for f in cell}))}); rename it"
            for i, cell in enumerate(found) if cell]


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
    cls = plan.classification
    ctx = OperatorContext(plan.column, keys, profile.default_region, memo=memo, context=cls.context if cls is not None else {})
    try:
        masked = spec.apply(values, plan.rule.params, ctx)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{plan.rule.where}.action", f"column {plan.column!r}: {exc.message}") from None
    return _mask_minority(masked, cls, profile)


def _mask_minority(masked: pa.ChunkedArray | pa.Array | None, cls: ColumnClassification | None,
                   profile: MaskingProfile) -> pa.ChunkedArray | pa.Array | None:
    """A column classified as one type may hold a few cells of others (an email among
    phone numbers): the rule for the column's type need not touch them (a phone token
    leaves an email as it is), so they are replaced by their type tokens afterwards."""
    if masked is None or cls is None or cls.kind != "structured" or cls.pii_type in (None, PiiType.FREE_TEXT):
        return masked
    others = [t for t in cls.found if t not in (cls.pii_type, PiiType.FREE_TEXT) and t in TEXT_TYPES]
    if not others or not (pa.types.is_string(masked.type) or pa.types.is_large_string(masked.type)):
        return masked
    return replace_entities(masked, types=others, min_score=SCAN_MIN_SCORE, default_region=profile.default_region,
                            context=cls.context)


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
    problems += _personal_column_names(table.column_names, profile.default_region)
    if problems:
        raise FailedPrecondition("; ".join(problems))
    _needed_keys(plans, keys)
    return MaskingPlan(profile, keys, tuple(quasi_identifiers), tuple(plans))


def apply_profile(table: pa.Table, profile: MaskingProfile, keys: MaskingKeys | None, *,
                  quasi_identifiers: Sequence[str] = (), k: int = 1, l_diversity: tuple[str, int] | None = None,
                  max_suppression: float | None = None) -> tuple[pa.Table, MaskingReport]:
    """Mask `table` as `profile` says, then (with `quasi_identifiers` and k > 1, or
    `l_diversity` = (sensitive column, ℓ)) make it k-anonymous over them along the
    profile's hierarchies (and t-close in the sensitive column when the profile sets
    `t_closeness`); a quasi-identifier the profile gives no hierarchy for gets one derived
    from its values. Without k-anonymity, quasi-identifiers are masked like
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
                                      sensitive=sensitive, l=ell, t=profile.t_closeness)
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

"""Whether a dataset holds personal data: the one rule, and why it says so.

Detectors alone cannot decide it: a census-like table (age, sex, marital status, income)
trips no detector and still describes people. A dataset is personal when any of these
holds, and each reason is kept with the dataset so that gates and reports can show it:

- a detector found personal data in a column at ingestion (`detected:<column>`);
- its owner declared quasi-identifiers (`quasi-identifiers`) or asked for k-anonymity
  with k > 1 (`k-anonymity`): both only make sense for data about people;
- its owner said so at ingestion (`declared-by-owner`);
- it holds the same rows as a dataset already judged personal (`same-data-as:<id>`),
  so that re-ingesting data under other settings does not shed the judgement.

Only an operator may declare a dataset not personal afterwards (an audited act, see
`governance.datasets.catalog.declare_personal_data`); that declaration is itself kept as
the reason (`operator:<principal>`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["OPERATOR_PREFIX", "is_personal_basis", "personal_basis"]

OPERATOR_PREFIX = "operator:"


def personal_basis(columns: Iterable[dict[str, Any]], quasi_identifiers: Sequence[str], k: int, *, owner_says: bool, same_data_as: Iterable[str] = ()) -> list[str]:
    """Every reason the dataset is personal, in a stable order (empty: it is not)."""
    reasons = [f"detected:{c['name']}" for c in columns if c.get("pii_types")]
    if quasi_identifiers:
        reasons.append("quasi-identifiers")
    if k > 1:
        reasons.append("k-anonymity")
    if owner_says:
        reasons.append("declared-by-owner")
    reasons.extend(f"same-data-as:{d}" for d in sorted(set(same_data_as)))
    return reasons


def is_personal_basis(basis_json: str) -> bool:
    """Whether a stored basis (JSON list) makes the dataset personal: any reason does, unless
    the last word is an operator's declaration that it is not (`operator:<who>:not-personal`)."""
    reasons = json.loads(basis_json or "[]")
    if reasons and str(reasons[-1]).startswith(OPERATOR_PREFIX):
        return not str(reasons[-1]).endswith(":not-personal")
    return bool(reasons)

"""A version's facts as the release gates and the ownership policy read them, derived from
the registry's records as they stand now (not as the version was registered), and the
operator's declaration that changes one of them (`declare_personal_data`).

Provenance: a version stays established only while its job vouches for it
(`established.still_established`). Personal data: an established version's fact is its
job's dataset's; a claimed one is presumed personal unless an operator declared it not,
and never less than what a dataset its lineage names says. Spend: the composed ε on the
budget of the data its lineage names.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlmodel import Session, col

from privet.governance.audit.log import Event
from privet.governance.errors import FailedPrecondition, InvalidArgument
from privet.governance.identity.principals import Principal
from privet.governance.policy.ownership import Owned
from privet.governance.privacy.guarantee import is_real
from privet.governance.privacy.ledger import budget_key
from privet.governance.privacy.limits import from_micro
from privet.governance.registry.base_models import base_is_released, kind_of, license_of
from privet.governance.registry.established import CLAIMED, ESTABLISHED, still_established
from privet.governance.registry.gates import ReleaseFacts, Stage
from privet.governance.registry.records import (
    VersionRecord,
    approvals_of,
    find_version,
    version_record,
    version_resource,
)
from privet.governance.runtime import Runtime
from privet.governance.store.dataset_tables import Dataset
from privet.governance.store.privacy_tables import DatasetBudget, PrivacyBudgetRow
from privet.governance.store.registry_tables import Model, ModelVersion

__all__ = [
    "as_of_now",
    "declare_personal_data",
    "has_usable_guarantee",
    "lineage_epsilon_spent",
    "lineage_has_personal_data",
    "owned_version",
    "release_facts",
    "trained_on_personal_data",
]

# How a lineage may name a dataset: (lineage field, dataset column it matches).
_LINEAGE_TO_DATASET = (("dataset_id", Dataset.id), ("dataset_id", Dataset.name),
                       ("dataset_digest", Dataset.blob_digest), ("raw_digest", Dataset.raw_digest))


def _datasets_named(lineage: dict[str, str]) -> list[ColumnElement[bool]]:
    """One condition per way `lineage` names a dataset (none when it names none)."""
    return [col(column) == lineage[key] for key, column in _LINEAGE_TO_DATASET if lineage.get(key)]


def lineage_has_personal_data(session: Session, lineage: dict[str, str]) -> bool:
    """Whether a dataset that `lineage` names (deleted ones included) is personal data
    (governance/datasets/personal.py). A lineage that names no dataset the platform holds
    says nothing either way."""
    named = _datasets_named(lineage)
    if not named:
        return False
    return any(d.personal for d in session.scalars(select(Dataset).where(or_(*named))))


def trained_on_personal_data(session: Session, row: ModelVersion, established: bool) -> bool:
    """The personal-data fact a gate decides on. Established: the job's dataset is personal
    (as it stands now: an operator may have declared it since). Claimed: presumed, unless an
    operator declared the version not personal, and never less than what its lineage names."""
    lineage = json.loads(row.lineage_json)
    if established:
        return lineage_has_personal_data(session, {"dataset_id": lineage.get("dataset_id", "")}) or row.trained_on_personal_data
    return row.trained_on_personal_data or lineage_has_personal_data(session, lineage)


def lineage_epsilon_spent(session: Session, lineage: dict[str, str]) -> float | None:
    """The composed ε spent on the privacy budget of the data `lineage` names (the largest,
    should it name several budgets), deleted datasets included: their budgets stay spent.
    None when it names no data the ledger holds a budget for."""
    named = _datasets_named(lineage)
    ids = list(session.scalars(select(col(Dataset.id)).where(or_(*named)))) if named else []
    budgets = set(session.scalars(select(col(DatasetBudget.budget_id)).where(col(DatasetBudget.dataset_id).in_(ids)))) if ids else set()
    if lineage.get("raw_digest"):
        budgets.add(budget_key(lineage["raw_digest"]))
    spent = list(session.scalars(select(col(PrivacyBudgetRow.spent_micro)).where(col(PrivacyBudgetRow.budget_id).in_(budgets)))) if budgets else []
    return from_micro(max(spent)) if spent else None


def has_usable_guarantee(row: ModelVersion) -> bool:
    """A row registered before guarantees were checked may hold an empty one (epsilon and
    delta 0, the strongest values there are): to a gate, that is no guarantee."""
    eps, delta = row.dp_epsilon, row.dp_delta
    return row.has_guarantee and eps is not None and delta is not None and is_real(eps) and eps > 0 and is_real(delta) and 0 < delta < 1


def as_of_now(session: Session, row: ModelVersion) -> tuple[str, bool]:
    """The version's provenance and personal-data fact as the gates read them now (its job
    may have failed since, its dataset been declared since), not as they were registered."""
    established = still_established(session, row)
    return (ESTABLISHED if established else CLAIMED), trained_on_personal_data(session, row, established)


def release_facts(session: Session, row: ModelVersion, override: dict[str, Any], *, epsilon_cap: float | None = None) -> ReleaseFacts:
    """What a release gate decides over for `row`; `override` replaces facts the transition
    itself changes (the requester and thresholds of a request)."""
    model = session.get(Model, row.model_name)
    established = still_established(session, row)
    values: dict[str, Any] = {
        "version_id": row.id,
        "model": row.model_name,
        "version": row.version,
        "stage": row.stage,
        "owner": model.owner if model else "",
        "trainer": row.trainer,
        "requester": row.requested_by or "",
        "approvers": tuple(a.principal for a in approvals_of(session, row.id)),
        "team": model.team if model else "",
        "provenance": ESTABLISHED if established else CLAIMED,
        "trained_on_personal_data": trained_on_personal_data(session, row, established),
        "has_guarantee": has_usable_guarantee(row),
        "epsilon": row.dp_epsilon,
        "delta": row.dp_delta,
        "metrics": json.loads(row.metrics_json),
        "thresholds": json.loads(row.thresholds_json),
        "dataset_epsilon_spent": lineage_epsilon_spent(session, json.loads(row.lineage_json)),
        "dataset_epsilon_cap": epsilon_cap,
        "kind": kind_of(row.architecture),
        "license": license_of(row.architecture, row.preprocessing_json),
        "base_released": base_is_released(session, row.architecture, row.preprocessing_json),
    }
    values.update(override)
    return ReleaseFacts(**values)


def owned_version(row: ModelVersion, model: Model | None) -> Owned:
    """A version as Cedar sees it for an ownership decision (its model's owner and team, its
    stage), from the row as stored: the weights policy needs no derived facts."""
    facts = ReleaseFacts(version_id=row.id, model=row.model_name, version=row.version, stage=row.stage, owner=model.owner if model else "",
                         trainer=row.trainer, requester=row.requested_by or "", approvers=(), team=model.team if model else "", provenance=row.provenance,
                         trained_on_personal_data=row.trained_on_personal_data, has_guarantee=row.has_guarantee, epsilon=None, delta=None,
                         kind=kind_of(row.architecture), license=license_of(row.architecture, row.preprocessing_json))
    entity = facts.entity()
    return Owned("ModelVersion", row.id, entity["attrs"], version_resource(row.model_name, row.version))


def declare_personal_data(rt: Runtime, principal: Principal, name: str, version: int, *, personal: bool, reason: str) -> VersionRecord:
    """An operator's declaration that a claimed version was (or was not) trained on personal
    data, audited with its reason. Only before it is released; an established version's
    fact comes from its dataset. InvalidArgument without a reason; FailedPrecondition for an
    established, released or revoked version, or (declaring not personal) one whose lineage
    names personal data."""
    if not reason.strip():
        raise InvalidArgument("reason", "say why (it is kept in the audit log)")
    who = principal.id.principal

    def unit(session: Session) -> VersionRecord:
        row = find_version(session, name, version, "", lock=True)
        if row.provenance == ESTABLISHED:
            raise FailedPrecondition(f"{name}:{row.version} is established: its personal-data fact is its dataset's (declare it on the dataset)")
        if row.stage in (Stage.RELEASED, Stage.REVOKED):
            raise FailedPrecondition(f"{name}:{row.version} is {row.stage}: declare before it is released")
        if not personal and lineage_has_personal_data(session, json.loads(row.lineage_json)):
            raise FailedPrecondition(f"{name}:{row.version} names personal data in its lineage; it cannot be declared not personal")
        before = row.trained_on_personal_data
        row.trained_on_personal_data, row.personal_declared_by = personal, ("" if personal else who)
        session.add(row)
        session.flush()
        rt.audit.append(Event(principal=who, action="registry.DeclarePersonalData", resource=version_resource(name, row.version), decision="allow",
                              details={"version_id": row.id, "personal": personal, "before": before, "reason": reason}))
        return version_record(row, approvals_of(session, row.id), session.get(Model, row.model_name))

    return rt.write(unit)

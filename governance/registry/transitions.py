"""Stage transitions (request, approve, release, revoke), each decided by Cedar over the
version's facts (`policies/release.cedar`).

Every transition runs inside one write unit: read the version (locked on PostgreSQL),
decide with Cedar over its facts, append the decision to the audit log, and, if allowed,
move the stage with a compare-and-set on the stage read. A denial commits its audit event
and changes nothing; a transition that lost a race changes nothing and raises
FailedPrecondition, so no stage is ever skipped. Releasing a version issues its signed
attestation (`attest.issue_attestation`) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import CursorResult, delete, select, update
from sqlmodel import Session, col

from privet.governance.attestation.keys import AttestationSigner
from privet.governance.audit.log import Event
from privet.governance.errors import FailedPrecondition, PermissionDenied
from privet.governance.identity.principals import Principal
from privet.governance.registry.attest import issue_attestation
from privet.governance.registry.facts import release_facts
from privet.governance.registry.gates import Stage, reasons_for
from privet.governance.registry.records import (
    VersionRecord,
    approvals_of,
    column_json,
    find_version,
    now_us,
    version_record,
    version_resource,
)
from privet.governance.registry.validation import check_thresholds, required_reason
from privet.governance.runtime import Runtime
from privet.governance.store.registry_tables import Model, ModelAlias, ModelApproval, ModelVersion

__all__ = ["approve", "release", "request_release", "revoke", "transition"]


def request_release(rt: Runtime, principal: Principal, name: str, version: int, *, thresholds: dict[str, float] | None, note: str) -> VersionRecord:
    """REGISTERED -> CANDIDATE; records the metric thresholds later gates check."""
    limits = check_thresholds(thresholds)
    now = now_us()
    who = principal.id.principal
    return transition(
        rt, principal, name, version, action="model.request", rpc="RequestRelease", from_stages=(Stage.REGISTERED,), to=Stage.CANDIDATE,
        changes={"requested_by": who, "requested_us": now, "thresholds_json": column_json(limits)},
        facts_override={"requester": who, "thresholds": limits}, note=note,
    )


def approve(rt: Runtime, principal: Principal, name: str, version: int, *, note: str) -> VersionRecord:
    """CANDIDATE -> APPROVED, by an approver other than the requester and the trainer."""
    who = principal.id.principal

    def add_approval(session: Session, row: ModelVersion) -> None:
        session.add(ModelApproval(version_id=row.id, principal=who, at_us=now_us(), note=note))

    return transition(rt, principal, name, version, action="model.approve", rpc="ApproveRelease", from_stages=(Stage.CANDIDATE,), to=Stage.APPROVED,
                      also=add_approval, note=note)


def release(rt: Runtime, principal: Principal, name: str, version: int, *, signer: AttestationSigner) -> VersionRecord:
    """APPROVED -> RELEASED, by a release manager; the version's attestation is issued and
    stored in the same transaction (nothing is released without one)."""

    def attest(session: Session, row: ModelVersion, seq: int) -> None:
        fresh = session.get(ModelVersion, row.id, populate_existing=True)
        assert fresh is not None
        model = session.get(Model, row.model_name)
        fresh.attestation_json = issue_attestation(session, fresh, release_seq=seq, signer=signer, team=model.team if model else "",
                                                   log_origin=rt.settings.audit_origin)
        session.add(fresh)

    return transition(rt, principal, name, version, action="model.release", rpc="ReleaseModelVersion", from_stages=(Stage.APPROVED,), to=Stage.RELEASED,
                      changes={"released_by": principal.id.principal, "released_us": now_us()}, after=attest)


def revoke(rt: Runtime, principal: Principal, name: str, version: int, *, erase: bool, reason: str) -> VersionRecord:
    """Any stage -> REVOKED, for a `reason` (required: InvalidArgument when blank); the
    version's aliases go with it. With `erase`, the wrapped data key is dropped (the caller
    then removes the blob: `weights.erase_remains`). A revoked version may still be erased later."""
    required_reason(reason)
    changes: dict[str, Any] = {"revoked_by": principal.id.principal, "revoked_us": now_us(), "revoked_reason": reason}
    if erase:
        changes |= {"wrapped_key": None, "kek_id": None, "erased": True}
    sources = tuple(s for s in Stage.ORDER if s != Stage.REVOKED) + ((Stage.REVOKED,) if erase else ())

    def not_erased_twice(row: ModelVersion) -> str | None:
        return f"the weights of {name}:{row.version} are already erased" if row.erased else None

    def aliases_of(session: Session, at: int) -> list[str]:
        query = select(col(ModelAlias.alias)).where(col(ModelAlias.model_name) == name, col(ModelAlias.version) == at).order_by(col(ModelAlias.alias))
        return list(session.scalars(query))

    with rt.read() as session:
        aliases = aliases_of(session, find_version(session, name, version, "").version)

    def drop_aliases(session: Session, row: ModelVersion) -> None:
        # What the audit event names is what goes: an alias moved onto the version since it
        # was read makes the revocation retry, as a concurrent move of an alias does.
        if aliases_of(session, row.version) != aliases:
            raise FailedPrecondition(f"the aliases of {name}:{row.version} moved concurrently; try again")
        session.execute(delete(ModelAlias).where(col(ModelAlias.model_name) == name, col(ModelAlias.version) == row.version))

    return transition(rt, principal, name, version, action="model.revoke", rpc="RevokeModelVersion", from_stages=sources, to=Stage.REVOKED,
                      changes=changes, note=reason, extra_details={"erase": erase, "aliases_removed": aliases}, precondition=not_erased_twice,
                      also=drop_aliases)


def transition(
    rt: Runtime,
    principal: Principal,
    name: str,
    version: int,
    *,
    action: str,
    rpc: str,
    from_stages: tuple[str, ...],
    to: str,
    changes: dict[str, Any] | None = None,
    facts_override: dict[str, Any] | None = None,
    also: Callable[[Session, ModelVersion], None] | None = None,
    note: str = "",
    extra_details: dict[str, Any] | None = None,
    precondition: Callable[[ModelVersion], str | None] | None = None,
    after: Callable[[Session, ModelVersion, int], None] | None = None,
) -> VersionRecord:
    """Move `name`:`version` from one of `from_stages` to `to` if Cedar allows `action`.

    `changes`: columns set with the stage; `also(session, row)` runs with the move, `after(
    session, row, seq)` once its audit event has sequence number `seq`; `precondition(row)`
    returns why the transition may not run, or None. Raises FailedPrecondition (audited)
    from the wrong stage, on a failed precondition or a lost race, PermissionDenied
    (audited, with the deciding policies and their reasons) when Cedar denies."""
    who = principal.id.principal
    engine = rt.policies.engine

    def unit(session: Session) -> tuple[VersionRecord | None, PermissionDenied | FailedPrecondition | None]:
        row = find_version(session, name, version, "", lock=True)
        resource = version_resource(name, row.version)
        audit_action = f"registry.{rpc}"
        why = f"{name}:{row.version} is {row.stage}; {rpc} needs {' or '.join(from_stages)}" if row.stage not in from_stages else None
        if why is None and precondition is not None:
            why = precondition(row)
        if why is not None:
            rt.audit.append(Event(principal=who, action=audit_action, resource=resource, decision="deny", details={"reason": why, "stage": row.stage}))
            return None, FailedPrecondition(why).mark_audited()
        facts = release_facts(session, row, facts_override or {}, epsilon_cap=rt.settings.max_dataset_epsilon)
        decision = engine.decide(principal, action, ("ModelVersion", row.id), {"caller": who}, [facts.entity()])
        policy_ids = tuple(sorted(decision.policy_ids))
        details = {"from": row.stage, "to": to, "version_id": row.id, "facts": facts.audit_details(), **(extra_details or {})}
        if note:
            details["note"] = note
        if not decision.allowed:
            reasons = reasons_for(policy_ids, facts, who, action, engine.reason)
            rt.audit.append(Event(principal=who, action=audit_action, resource=resource, decision="deny", policy_ids=policy_ids, details=details | {"reasons": list(reasons)}))
            message = f"{who} may not {rpc} {name}:{row.version}: " + "; ".join(reasons) + f" (policies: {', '.join(policy_ids)})"
            return None, PermissionDenied(message, policy_ids=policy_ids, reasons=reasons).mark_audited()
        # Compare-and-set on the stage read above: a concurrent transition that got
        # there first makes this one change nothing (and the unit roll back).
        moved = session.execute(
            update(ModelVersion)
            .where(col(ModelVersion.id) == row.id, col(ModelVersion.stage) == row.stage, col(ModelVersion.erased) == row.erased)
            .values(stage=to, **(changes or {}))
        )
        assert isinstance(moved, CursorResult)  # an UPDATE's result, which counts its rows
        if moved.rowcount != 1:
            raise FailedPrecondition(f"{name}:{row.version} changed stage concurrently; try again")
        if also is not None:
            also(session, row)
        session.flush()
        seq = rt.audit.append(Event(principal=who, action=audit_action, resource=resource, decision="allow", policy_ids=policy_ids, details=details))
        if after is not None:
            after(session, row, seq)
            session.flush()
        fresh = session.get(ModelVersion, row.id, populate_existing=True)
        assert fresh is not None
        return version_record(fresh, approvals_of(session, row.id), session.get(Model, row.model_name)), None

    record, error = rt.write(unit)
    if error is not None:
        raise error
    assert record is not None
    return record

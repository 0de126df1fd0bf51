"""Aliases applications resolve (e.g. "production" -> churn:3): moved only through the
release gates (Cedar action `model.alias`, which the gates' invariants on `model.advance`
cover), each move one audited write unit; a version's aliases go when it is revoked."""

from __future__ import annotations

from sqlmodel import Session

from privet.governance.errors import FailedPrecondition, InvalidArgument
from privet.governance.identity.principals import Principal
from privet.governance.identity.spiffe import check_name
from privet.governance.registry.gates import Stage
from privet.governance.registry.records import BUILT_IN_ALIASES, VersionRecord, now_us
from privet.governance.registry.transitions import transition
from privet.governance.registry.validation import required_reason
from privet.governance.runtime import Runtime
from privet.governance.store.registry_tables import ModelAlias, ModelVersion

__all__ = ["set_alias"]


def _check_alias(alias: str) -> str:
    check_name(alias, "alias")
    if alias in BUILT_IN_ALIASES:
        raise InvalidArgument("alias", f"{alias!r} is built in (it always means the {alias} version); choose another name")
    return alias


def set_alias(rt: Runtime, principal: Principal, name: str, alias: str, version: int, *, reason: str) -> VersionRecord:
    """Point `alias` of model `name` at its RELEASED `version`, if the gates allow
    `model.alias` for that version now. Raises InvalidArgument (alias, reason),
    FailedPrecondition (not RELEASED, or the alias moved concurrently), PermissionDenied."""
    alias = _check_alias(alias)
    required_reason(reason)
    with rt.read() as session:
        current = session.get(ModelAlias, (name, alias))
        previous = current.version if current is not None else 0

    def move(session: Session, row: ModelVersion) -> None:
        now = session.get(ModelAlias, (name, alias), populate_existing=True)
        if (now.version if now is not None else 0) != previous:
            raise FailedPrecondition(f"alias {alias!r} of {name!r} moved concurrently; try again")
        if now is None:
            session.add(ModelAlias(model_name=name, alias=alias, version=row.version, set_by=principal.id.principal, set_at_us=now_us(), reason=reason))
        else:
            now.version, now.set_by, now.set_at_us, now.reason = row.version, principal.id.principal, now_us(), reason
            session.add(now)

    return transition(rt, principal, name, version, action="model.alias", rpc="SetAlias", from_stages=(Stage.RELEASED,), to=Stage.RELEASED,
                      also=move, note=reason, extra_details={"alias": alias, "previous_version": previous})

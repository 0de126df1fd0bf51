"""Ownership: whether a principal may act on one dataset, job or model, decided by Cedar over
the thing's owner and team (`policies/ownership.cedar`); every denial is audited.

The per-RPC check (services/common) says which calls a role may make at all; this is the
second, per-thing check that the governance functions make once they have loaded the
thing. Owners and teams are facts Privet recorded when the thing was made (the caller's
certificate and principals.yaml), never something a request states.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from privet.governance.audit.log import Event
from privet.governance.errors import PermissionDenied
from privet.governance.identity.principals import Principal
from privet.governance.identity.spiffe import SpiffeId
from privet.governance.policy.engine import NAMESPACE

__all__ = ["Owned", "acting_principal", "may", "require"]


@dataclass(frozen=True)
class Owned:
    """A thing with an owner: Cedar entity `kind` (Dataset, Job, Model, ModelVersion) `id`,
    its attributes (owner and team among them) and the audit resource it is named by."""

    kind: str
    id: str
    attrs: dict[str, Any]
    audit_resource: str

    @property
    def owner(self) -> str:
        return str(self.attrs.get("owner", ""))

    def entity(self) -> dict[str, Any]:
        return {"uid": {"type": f"{NAMESPACE}::{self.kind}", "id": self.id}, "attrs": self.attrs, "parents": []}


def acting_principal(runtime: Any, who: Principal | str) -> Principal:
    """The directory's principal for `who` (a Principal, or its id "user/alice"): its role
    and team come from principals.yaml, never from the caller."""
    if isinstance(who, Principal):
        return who
    found: Principal | None = runtime.policies.engine.directory.principals.get(who)
    if found is not None:
        return found
    kind, _, name = who.partition("/")
    return Principal(SpiffeId(kind, name), role="")  # unknown: no role, no team, so only "owner" rules can permit


def may(runtime: Any, who: Principal | str, action: str, thing: Owned) -> tuple[bool, tuple[str, ...]]:
    principal = acting_principal(runtime, who)
    decision = runtime.policies.engine.decide(principal, action, (thing.kind, thing.id), {"caller": principal.id.principal}, [thing.entity()])
    return decision.allowed, tuple(sorted(decision.policy_ids))


def require(runtime: Any, who: Principal | str, action: str, thing: Owned) -> None:
    """PermissionDenied (audited, naming the deciding policies) unless `who` may `action` `thing`."""
    allowed, policy_ids = may(runtime, who, action, thing)
    if allowed:
        return
    principal = acting_principal(runtime, who)
    said = f"{principal.id.principal} (team {principal.team or 'none'}) may not {action} {thing.audit_resource}"
    # Who owns it goes to the audit log, not to a caller who may not see the thing at all.
    owned_by = {"owner": thing.owner, "team": thing.attrs.get("team", "")}
    runtime.deny(Event(principal=principal.id.principal, action=action, resource=thing.audit_resource, decision="deny", policy_ids=policy_ids,
                       details={"reason": said, **owned_by}))
    raise PermissionDenied(f"{said} (policies: {', '.join(policy_ids)})", policy_ids=policy_ids).mark_audited()

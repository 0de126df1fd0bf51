"""What waits for whom: versions asked to be released (CANDIDATE, an approver's turn) or
approved (APPROVED, a release manager's turn), oldest request first, with who may not act
on each (separation of duties: not its requester, not its trainer)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlmodel import col

from privet.governance.audit.log import Event
from privet.governance.errors import InvalidArgument
from privet.governance.identity.principals import Principal
from privet.governance.paging import after_text
from privet.governance.paging import page_size as page_size_of
from privet.governance.policy.ownership import may
from privet.governance.registry.gates import Stage
from privet.governance.registry.ownership import owned_model
from privet.governance.registry.records import approvals_of
from privet.governance.runtime import Runtime
from privet.governance.store.registry_tables import Model, ModelVersion

__all__ = ["PendingRelease", "pending_releases"]

_WAITING_FOR = {Stage.CANDIDATE: "approver", Stage.APPROVED: "release-manager"}


@dataclass(frozen=True)
class PendingRelease:
    model_name: str
    version: int
    stage: str
    requested_by: str
    requested_at_us: int
    trained_by: str
    approved_by: list[str]
    waiting_for: str
    note: str


def _token(row: ModelVersion) -> str:
    return f"{row.requested_us or 0}.{row.id}"


def _after(token: str) -> tuple[int, str] | None:
    if not token:
        return None
    at, _, version_id = after_text(token).partition(".")
    if not (at.isascii() and at.isdigit() and version_id):
        raise InvalidArgument("page.page_token", "not a token this service issued")
    return int(at), version_id


def _note(row: ModelVersion) -> str:
    """Who may not approve it (policies/release.cedar: not its requester, not its trainer)."""
    if row.stage != Stage.CANDIDATE:
        return ""
    barred: dict[str, list[str]] = {}
    for who, why in ((row.requested_by or "", "requested it"), (row.trainer or "", "trained it")):
        if who:
            barred.setdefault(who, []).append(why)
    return "; ".join(f"not {who} ({', '.join(why)})" for who, why in barred.items())


def pending_releases(rt: Runtime, principal: Principal, page_size: int, page_token: str) -> tuple[list[PendingRelease], str]:
    """Pending releases of the models `principal` may read (reviewers: every model; a data
    scientist: their team's), oldest request first. The read is counted in the audit log."""
    size = page_size_of(page_size)
    after = _after(page_token)
    with rt.read() as session:
        query = select(ModelVersion).where(col(ModelVersion.stage).in_(tuple(_WAITING_FOR)))
        if after is not None:
            query = query.where(or_(col(ModelVersion.requested_us) > after[0],
                                    and_(col(ModelVersion.requested_us) == after[0], col(ModelVersion.id) > after[1])))
        rows = list(session.scalars(query.order_by(col(ModelVersion.requested_us), col(ModelVersion.id)).limit(size + 1)))
        token = _token(rows[size - 1]) if len(rows) > size else ""
        models = {m.name: m for m in session.scalars(select(Model).where(col(Model.name).in_({r.model_name for r in rows})))}
        visible = [r for r in rows[:size] if may(rt, principal, "model.read", owned_model(models[r.model_name]))[0]]
        pending = [PendingRelease(r.model_name, r.version, r.stage, r.requested_by or "", r.requested_us or 0, r.trainer or "",
                                  [a.principal for a in approvals_of(session, r.id)], _WAITING_FOR[r.stage], _note(r)) for r in visible]
    rt.count_read(Event(principal=principal.id.principal, action="registry.ListPendingReleases", resource="model/*", decision="allow", details={}))
    return pending, token

"""Reading models and versions.

With a principal, a read is decided by the ownership policy (`model.read`: the owner's
team, reviewers and the services; a model's facts name its data and job) and counted in
the audit log; without one (internal callers) it is neither. A version is returned with
its provenance and personal-data fact as the gates read them now (`facts.as_of_now`).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

from privet.governance.audit.log import Event
from privet.governance.identity.principals import Principal
from privet.governance.paging import after_number, after_text
from privet.governance.paging import page_size as page_size_of
from privet.governance.policy.ownership import may, require
from privet.governance.registry.facts import as_of_now
from privet.governance.registry.ownership import owned_model
from privet.governance.registry.records import (
    ModelRecord,
    VersionRecord,
    approvals_of,
    find_model,
    find_version,
    model_record,
    version_record,
)
from privet.governance.runtime import Runtime
from privet.governance.store.registry_tables import Model, ModelVersion

__all__ = ["get_model", "get_version", "list_models", "list_versions"]


def _may_read(rt: Runtime, principal: Principal | None, model: Model, rpc: str) -> None:
    if principal is None:
        return
    require(rt, principal, "model.read", owned_model(model))
    rt.count_read(Event(principal=principal.id.principal, action=f"registry.{rpc}", resource=f"model/{model.name}", decision="allow", details={}))


def get_model(rt: Runtime, name: str, principal: Principal | None) -> ModelRecord:
    with rt.read() as session:
        model = find_model(session, name)
        _may_read(rt, principal, model, "GetModel")
        return model_record(session, model)


def list_models(rt: Runtime, page_size: int, page_token: str, principal: Principal | None) -> tuple[list[ModelRecord], str]:
    """Models by name; with `principal`, only those it may read (a page may then hold fewer)."""
    size = page_size_of(page_size)
    with rt.read() as session:
        query = select(Model).order_by(col(Model.name)).limit(size + 1)
        if page_token:
            query = query.where(col(Model.name) > after_text(page_token))
        rows = list(session.scalars(query))
        token = rows[size - 1].name if len(rows) > size else ""
        visible = [m for m in rows[:size] if principal is None or may(rt, principal, "model.read", owned_model(m))[0]]
        if principal is not None:
            rt.count_read(Event(principal=principal.id.principal, action="registry.ListModels", resource="model/*", decision="allow", details={}))
        return [model_record(session, m) for m in visible], token


def get_version(rt: Runtime, name: str, version: int, alias: str, principal: Principal | None) -> VersionRecord:
    """`version` > 0, or alias "released" (or "latest") with version 0."""
    with rt.read() as session:
        model = find_model(session, name)
        _may_read(rt, principal, model, "GetModelVersion")
        row = find_version(session, name, version, alias)
        return version_record(row, approvals_of(session, row.id), model, as_of_now(session, row))


def list_versions(rt: Runtime, name: str, page_size: int, page_token: str, principal: Principal | None) -> tuple[list[VersionRecord], str]:
    size = page_size_of(page_size)
    after = after_number(page_token, first=0)
    with rt.read() as session:
        model = find_model(session, name)
        _may_read(rt, principal, model, "ListModelVersions")
        query = (select(ModelVersion).where(col(ModelVersion.model_name) == name, col(ModelVersion.version) > after)
                 .order_by(col(ModelVersion.version)).limit(size + 1))
        rows = list(session.scalars(query))
        token = str(rows[size - 1].version) if len(rows) > size else ""
        return [version_record(r, approvals_of(session, r.id), model, as_of_now(session, r)) for r in rows[:size]], token

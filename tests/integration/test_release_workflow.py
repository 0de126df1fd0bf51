"""The release workflow people run: what waits for whom, aliases applications resolve
(moved only through the gates, each move audited, gone with a revoked version), and a
reason for every revocation."""

from __future__ import annotations

import json

import grpc
import pytest
from sqlalchemy import select

from privet.governance.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from privet.governance.registry import ModelRegistry
from privet.governance.runtime import Runtime
from privet.governance.store.tables import AuditEvent
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from tests.helpers import stubs_as
from tests.integration.test_registry import _principal, _version


@pytest.fixture
def registry(sqlite_runtime: Runtime) -> ModelRegistry:
    return ModelRegistry(sqlite_runtime)


def _released(registry: ModelRegistry, rt: Runtime) -> int:
    v = _version(registry, rt)
    registry.request_release(_principal(rt, "user/alice"), "m", v)
    registry.approve(_principal(rt, "user/dana"), "m", v)
    registry.release(_principal(rt, "user/bob"), "m", v)
    return v


def _events(rt: Runtime, action: str) -> list[AuditEvent]:
    with rt.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)))


def test_pending_releases_say_what_waits_for_whom(registry: ModelRegistry, sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    first, second = _version(registry, rt), _version(registry, rt)
    registry.request_release(_principal(rt, "user/alice"), "m", first)
    registry.request_release(_principal(rt, "user/alice"), "m", second)
    registry.approve(_principal(rt, "user/dana"), "m", second)
    pending, token = registry.pending_releases(_principal(rt, "user/bob"))
    assert token == ""
    assert [(p.version, p.stage, p.waiting_for) for p in pending] == [(first, "CANDIDATE", "approver"), (second, "APPROVED", "release-manager")]
    assert pending[0].requested_by == "user/alice" and pending[0].note == "not user/alice (requested it, trained it)"
    assert pending[1].approved_by == ["user/dana"]
    page, token = registry.pending_releases(_principal(rt, "user/dana"), page_size=1)
    assert [p.version for p in page] == [first] and token
    rest, _ = registry.pending_releases(_principal(rt, "user/dana"), page_size=1, page_token=token)
    assert [p.version for p in rest] == [second]
    # Another team's data scientist sees none of it.
    assert registry.pending_releases(_principal(rt, "user/erin"))[0] == []
    with pytest.raises(InvalidArgument):
        registry.pending_releases(_principal(rt, "user/bob"), page_token="\x00")


def test_an_alias_resolves_moves_through_the_gates_and_goes_with_a_revoked_version(registry: ModelRegistry, sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    bob = _principal(rt, "user/bob")
    one, two = _released(registry, rt), _released(registry, rt)
    registry.set_alias(bob, "m", "production", one, reason="first rollout")
    assert registry.get_version("m", alias="@production").version == one
    assert registry.get_version("m", alias="production").version == one
    registry.set_alias(bob, "m", "production", two, reason="better accuracy")
    assert registry.get_version("m", alias="@production").version == two
    moves = _events(rt, "registry.SetAlias")
    assert [(e.decision, e.details) for e in moves][-1][0] == "allow"
    assert '"previous_version":' + str(one) in moves[-1].details.replace(" ", "")
    # Only a release manager moves it (admin included), audited with the deciding policy.
    with pytest.raises(PermissionDenied) as denied:
        registry.set_alias(_principal(rt, "user/admin"), "m", "production", one, reason="x")
    assert "alias-only-by-release-manager" in denied.value.policy_ids
    assert _events(rt, "registry.SetAlias")[-1].decision == "deny"
    # Only a released version; names are checked; built-in aliases are not for moving.
    unreleased = _version(registry, rt)
    with pytest.raises(FailedPrecondition):
        registry.set_alias(bob, "m", "production", unreleased, reason="x")
    for alias, reason, field in (("Production!", "x", "alias"), ("released", "x", "alias"), ("staging", "  ", "reason")):
        with pytest.raises(InvalidArgument) as err:
            registry.set_alias(bob, "m", alias, two, reason=reason)
        assert err.value.field == field
    # Revoking needs a reason, and takes the version's aliases with it.
    with pytest.raises(InvalidArgument) as err:
        registry.revoke(bob, "m", two, reason="")
    assert err.value.field == "reason"
    registry.revoke(bob, "m", two, reason="bias found in review")
    assert '"aliases_removed":["production"]' in _events(rt, "registry.RevokeModelVersion")[-1].details.replace(" ", "")
    with pytest.raises(NotFound):
        registry.get_version("m", alias="@production")


def test_the_workflow_over_grpc(servers, sqlite_runtime: Runtime, registry: ModelRegistry) -> None:
    v = _released(registry, sqlite_runtime)
    with stubs_as(sqlite_runtime.home, servers["registry"], registry_pb2_grpc.RegistryServiceStub) as as_:
        moved = as_("bob").SetAlias(registry_pb2.SetAliasRequest(name="m", alias="production", version=v, reason="rollout"))
        assert moved.version == v
        resolved = as_("alice").GetModelVersion(registry_pb2.GetModelVersionRequest(name="m", alias="@production"))
        assert resolved.version == v
        assert list(as_("bob").ListPendingReleases(registry_pb2.ListPendingReleasesRequest()).releases) == []
        with pytest.raises(grpc.RpcError) as err:
            as_("bob").RevokeModelVersion(registry_pb2.RevokeModelVersionRequest(name="m", version=v))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as err:
            as_("alice").SetAlias(registry_pb2.SetAliasRequest(name="m", alias="production", version=v, reason="x"))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_the_workflow_from_the_command_line(cli, sqlite_runtime: Runtime, registry: ModelRegistry) -> None:
    rt = sqlite_runtime
    waiting = _version(registry, rt)
    registry.request_release(_principal(rt, "user/alice"), "m", waiting)
    code, out, exc = cli("--as", "dana", "--json", "release", "pending")
    assert code == 0, (out, exc)
    (item,) = json.loads(out)
    assert item["version"] == waiting and item["stage"] == "CANDIDATE" and item["waiting_for"] == "approver"
    v = _released(registry, rt)
    code, out, exc = cli("--as", "bob", "release", "alias", f"m:{v}", "production", "--reason", "rollout")
    assert code == 0, (out, exc)
    assert registry.get_version("m", alias="@production").version == v
    code, out, _ = cli("--as", "bob", "release", "revoke", f"m:{v}")  # no --reason
    assert code != 0 and registry.get_version("m", v).stage == "RELEASED"

"""The registry checks a model's DP guarantee, end to end on a real runtime (SQLite): it is
complete and in range, or refused naming the field (an empty one read as epsilon 0 and passed
every DP gate); a composed guarantee (DP-SGD + the job's other DP releases) leaves out no
part's ε or δ; and rows already on record with a huge epsilon or an empty guarantee are
denied, yet never break revocation (Cedar's integers are 64-bit)."""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy import update

from privet.common.v1 import types_pb2
from privet.governance.errors import InvalidArgument, PermissionDenied
from privet.governance.privacy.accounting import Mechanism, epsilon_for
from privet.governance.registry import MAX_EPSILON, ModelRegistry, Stage, VersionSpec
from privet.governance.runtime import Runtime
from privet.governance.store.registry_tables import Model, ModelVersion
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from tests.established import establish_version
from tests.helpers import bad_request_fields, channel
from tests.integration._registry_support import GUARANTEE, audit_events, principal, uploads, weights


@pytest.fixture
def registry(sqlite_runtime: Runtime) -> ModelRegistry:
    return ModelRegistry(sqlite_runtime)


# -- the DP guarantee --------------------------------------------------------------------------
def test_an_empty_guarantee_message_is_refused_naming_epsilon(servers, sqlite_runtime) -> None:
    meta = registry_pb2.ModelVersionMetadata(model_name="pii", trained_on_personal_data=True, guarantee=types_pb2.DPGuarantee())
    requests = iter([registry_pb2.CreateModelVersionRequest(metadata=meta), registry_pb2.CreateModelVersionRequest(chunk=weights())])
    with channel(sqlite_runtime.home, "alice", servers["registry"]) as ch, pytest.raises(grpc.RpcError) as err:
        registry_pb2_grpc.RegistryServiceStub(ch).CreateModelVersion(requests, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(err.value) == ["metadata.guarantee.epsilon"]
    assert list(sqlite_runtime.blobs.digests()) == []
    with sqlite_runtime.read() as session:
        assert session.get(Model, "pii") is None


@pytest.mark.parametrize(
    "field,bad",
    [
        ("epsilon", 0.0), ("epsilon", -1.0), ("epsilon", float("nan")), ("epsilon", float("inf")), ("epsilon", MAX_EPSILON * 1.0001), ("epsilon", 1e16),
        ("epsilon", None), ("epsilon", True), ("epsilon", "3"),
        ("delta", 0.0), ("delta", 1.0), ("delta", -1e-6), ("delta", None),
        ("noise_multiplier", 0.0), ("noise_multiplier", float("inf")), ("noise_multiplier", None),
        ("sample_rate", 0.0), ("sample_rate", 1.5), ("sample_rate", None),
        ("steps", 0), ("steps", 2.5), ("steps", None),
        ("accountant", ""), ("accountant", "  "), ("accountant", None),
        ("max_grad_norm", 0.0), ("max_grad_norm", -1.0), ("max_grad_norm", None),
    ],
)
def test_every_part_of_a_guarantee_is_checked(registry, sqlite_runtime, field, bad) -> None:
    guarantee = {k: v for k, v in GUARANTEE.items() if k != field} | ({} if bad is None else {field: bad})
    with pytest.raises(InvalidArgument) as err:
        registry.create_version(principal(sqlite_runtime, "user/alice"), VersionSpec("m", trained_on_personal_data=True, guarantee=guarantee), [weights()])
    assert err.value.field == f"metadata.guarantee.{field}"
    assert list(sqlite_runtime.blobs.digests()) == [] and uploads(sqlite_runtime) == []


@pytest.mark.parametrize("field,change", [
    ("epsilon", {"epsilon": 0.3}),                                # σ 1.1, q 0.01, 100 steps give more than that
    ("epsilon", {"noise_multiplier": 0.3}),                       # the same ε with far less noise
    ("accountant", {"accountant": "made-up"}),                    # an accountant nobody can check it against
])
def test_a_guarantee_its_own_mechanism_contradicts_is_refused(registry, sqlite_runtime, field, change) -> None:
    with pytest.raises(InvalidArgument) as err:
        registry.create_version(principal(sqlite_runtime, "user/alice"), VersionSpec("m", trained_on_personal_data=True, guarantee=GUARANTEE | change), [weights()])
    assert err.value.field == f"metadata.guarantee.{field}"
    assert list(sqlite_runtime.blobs.digests()) == [] and uploads(sqlite_runtime) == []


def test_a_complete_guarantee_up_to_the_largest_epsilon_registers(registry, sqlite_runtime) -> None:
    alice = principal(sqlite_runtime, "user/alice")
    for guarantee in (GUARANTEE, GUARANTEE | {"epsilon": MAX_EPSILON, "sample_rate": 1.0, "steps": 1}):
        assert registry.create_version(alice, VersionSpec("m", guarantee=guarantee), [weights()]).guarantee == guarantee
    registry.declare_personal_data(principal(sqlite_runtime, "user/admin"), "m", 1, personal=False, reason="test: public data")
    assert registry.request_release(alice, "m", 1).stage == Stage.CANDIDATE


# -- a composed guarantee: DP-SGD and the job's other DP releases ------------------------------
SGD_DELTA = 9e-7
SGD_EPSILON = epsilon_for(Mechanism(1.1, 0.01, 500, SGD_DELTA), "prv")
RELEASES = [
    {"purpose": "domain:plan", "mechanism": "laplace-partition-selection", "epsilon": 0.2, "delta": 1e-7},
    {"purpose": "evaluation", "mechanism": "laplace-histogram", "epsilon": 0.3, "delta": 0.0},
]
COMPOSED = {
    "epsilon": SGD_EPSILON + 0.5, "delta": 1e-6, "noise_multiplier": 1.1, "sample_rate": 0.01, "steps": 500, "accountant": "prv",
    "max_grad_norm": 1.0, "sgd_epsilon": SGD_EPSILON, "sgd_delta": SGD_DELTA, "releases": RELEASES, "neighbouring_relation": "add-remove-one",
}


def test_a_composed_guarantee_registers_and_keeps_its_parts(registry, sqlite_runtime) -> None:
    version = registry.create_version(principal(sqlite_runtime, "user/alice"), VersionSpec("m", trained_on_personal_data=True, guarantee=COMPOSED), [weights()])
    assert version.guarantee["releases"] == RELEASES and version.guarantee["sgd_delta"] == SGD_DELTA


@pytest.mark.parametrize("field,change", [
    ("epsilon", {"epsilon": SGD_EPSILON + 0.1}),                   # the releases' 0.5 left out
    ("delta", {"delta": SGD_DELTA}),                               # the selection's δ left out
    ("sgd_epsilon", {"sgd_epsilon": SGD_EPSILON / 2}),              # DP-SGD's part understated
    ("sgd_delta", {"sgd_delta": 0.0, "releases": RELEASES}),        # no δ to check DP-SGD at
    ("releases", {"releases": [{"purpose": "evaluation", "mechanism": "laplace-histogram", "epsilon": -1}]}),
])
def test_a_composed_guarantee_missing_a_part_is_refused(registry, sqlite_runtime, field, change) -> None:
    with pytest.raises(InvalidArgument) as err:
        registry.create_version(principal(sqlite_runtime, "user/alice"), VersionSpec("m", trained_on_personal_data=True, guarantee=COMPOSED | change), [weights()])
    assert err.value.field == f"metadata.guarantee.{field}"
    assert list(sqlite_runtime.blobs.digests()) == [] and uploads(sqlite_runtime) == []


# -- rows already on record: huge epsilon, empty guarantee ---------------------------------------
def _set(rt: Runtime, name: str, **values) -> None:
    rt.write(lambda session: session.execute(update(ModelVersion).where(ModelVersion.model_name == name).values(**values)))


def test_a_huge_epsilon_on_record_is_denied_and_still_revocable(registry, sqlite_runtime) -> None:
    p = lambda who: principal(sqlite_runtime, who)
    establish_version(registry, sqlite_runtime, VersionSpec("pii", guarantee=GUARANTEE), weights())
    registry.create_version(p("user/alice"), VersionSpec("plain", guarantee=GUARANTEE), [weights()])
    registry.declare_personal_data(p("user/admin"), "plain", 1, personal=False, reason="test: public data")
    for name in ("pii", "plain"):
        _set(sqlite_runtime, name, dp_epsilon=1e16)  # registered before the bound existed
    with pytest.raises(PermissionDenied) as err:
        registry.request_release(p("user/alice"), "pii", 1)
    assert err.value.policy_ids == ("dp-epsilon-at-most-8",) and "epsilon 1e+16" in err.value.reasons[0]
    assert registry.request_release(p("user/alice"), "plain", 1).stage == Stage.CANDIDATE  # no personal data: epsilon is moot
    assert registry.revoke(p("user/bob"), "pii", 1, reason="leak").stage == Stage.REVOKED
    assert registry.revoke(p("user/bob"), "pii", 1, erase=True, reason="leak").erased
    decisions = [(e.action, e.decision) for e in audit_events(sqlite_runtime, "registry.RevokeModelVersion")]
    assert decisions == [("registry.RevokeModelVersion", "allow")] * 2


def test_an_empty_guarantee_on_record_is_no_guarantee(registry, sqlite_runtime) -> None:
    alice = principal(sqlite_runtime, "user/alice")
    establish_version(registry, sqlite_runtime, VersionSpec("pii", guarantee=GUARANTEE), weights())
    _set(sqlite_runtime, "pii", dp_epsilon=0.0, dp_delta=0.0)  # what an empty DPGuarantee used to register
    with pytest.raises(PermissionDenied) as err:
        registry.request_release(alice, "pii", 1)
    assert err.value.policy_ids == ("dp-guarantee-required",)

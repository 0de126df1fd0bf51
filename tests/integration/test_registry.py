"""The model registry end to end: real servers over mTLS, real blobs, real SQLite and PostgreSQL.

Weights are sealed at rest (no plaintext run in the blob; any tampering is DATA_LOSS),
rotation leaves blobs untouched, erasure makes weights unrecoverable, and every release
gate decides as policies/release.cedar says, audited, without ever skipping a stage.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from safetensors.numpy import save
from sqlalchemy import select

from privet.common.v1 import types_pb2
from privet.governance.crypto import DEFAULT_CHUNK_SIZE
from privet.governance.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from privet.governance.policy.engine import DEFAULT_DENY
from privet.governance.registry import ModelRegistry, ReleaseFacts, Stage, VersionSpec
from privet.governance.runtime import Runtime
from privet.governance.store.registry_tables import ModelVersion
from privet.governance.store.tables import AuditEvent
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from tests.established import establish_version
from tests.helpers import bad_request_fields, error_info, stubs_as

HEADER = 9  # the sealed blob's format header
SEALED_CHUNK = DEFAULT_CHUNK_SIZE + 16
# The rest of a complete DP guarantee, for tests about its ε and δ.
_DP_MECHANISM = {"noise_multiplier": 1.1, "sample_rate": 0.01, "steps": 100, "accountant": "prv", "max_grad_norm": 1.0}


def _dp(epsilon: float, delta: float) -> dict:
    return {"epsilon": epsilon, "delta": delta, **_DP_MECHANISM}


def _weights(seed: int = 0, n: int = 550_000) -> bytes:
    """About 2.2 MB: three 1 MiB chunks once sealed (two full, one short)."""
    rng = np.random.default_rng(seed)
    return save({"dense.weight": rng.standard_normal(n).astype(np.float32), "dense.bias": rng.standard_normal(8)})


def _requests(meta: registry_pb2.ModelVersionMetadata, data: bytes) -> Iterator[registry_pb2.CreateModelVersionRequest]:
    yield registry_pb2.CreateModelVersionRequest(metadata=meta)
    for i in range(0, len(data), 1 << 20):
        yield registry_pb2.CreateModelVersionRequest(chunk=data[i : i + (1 << 20)])


def _upload(stub, name: str, data: bytes, **meta) -> registry_pb2.ModelVersion:
    return stub.CreateModelVersion(_requests(registry_pb2.ModelVersionMetadata(model_name=name, **meta), data), timeout=30)


def _download(stub, name: str, version: int) -> bytes:
    return b"".join(c.data for c in stub.DownloadWeights(registry_pb2.DownloadWeightsRequest(name=name, version=version), timeout=30))


def _row(rt: Runtime, name: str, version: int) -> ModelVersion:
    with rt.read() as session:
        return session.scalars(select(ModelVersion).where(ModelVersion.model_name == name, ModelVersion.version == version)).one()


def _events(rt: Runtime, action: str) -> list[AuditEvent]:
    with rt.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)))


@pytest.fixture
def as_user(servers, sqlite_runtime):
    """as_user("alice") -> a RegistryService stub acting as alice over mTLS."""
    with stubs_as(sqlite_runtime.home, servers["registry"], registry_pb2_grpc.RegistryServiceStub) as make:
        yield make


# -- weights at rest -----------------------------------------------------------------------------
def test_register_show_and_download_round_trip(as_user, sqlite_runtime) -> None:
    data = _weights()
    alice = as_user("alice")
    meta = dict(
        architecture="mlp",
        inputs=[types_pb2.TensorSpec(name="x", datatype="FP32", shape=[-1, 8])],
        metrics={"accuracy": 0.93},
        lineage=types_pb2.Lineage(dataset_id="ds1", training_job_id="job1"),
        guarantee=types_pb2.DPGuarantee(epsilon=3.0, delta=1e-6, **_DP_MECHANISM),
        trained_on_personal_data=True,
        expected_size=len(data),
    )
    v = _upload(alice, "churn", data, **meta)
    assert (v.model_name, v.version, v.stage, v.size_bytes) == ("churn", 1, registry_pb2.STAGE_REGISTERED, len(data))
    assert {(t.name, t.dtype, tuple(t.shape)) for t in v.tensors} == {("dense.weight", "F32", (550_000,)), ("dense.bias", "F64", (8,))}
    assert v.has_guarantee and v.guarantee.epsilon == 3.0 and v.lineage.dataset_id == "ds1" and v.key_id == "kek-1"
    assert _upload(alice, "churn", _weights(1), architecture="mlp").version == 2
    got = alice.GetModelVersion(registry_pb2.GetModelVersionRequest(name="churn", version=1))
    assert got.digest == v.digest and got.created_by == "user/alice"
    assert [m.name for m in alice.ListModels(registry_pb2.ListModelsRequest()).models] == ["churn"]
    page = alice.ListModelVersions(registry_pb2.ListModelVersionsRequest(name="churn", page=types_pb2.PageRequest(page_size=1)))
    assert [x.version for x in page.versions] == [1] and page.next_page_token
    assert _download(alice, "churn", 1) == data
    # The inference service fetches released weights only; nobody else's team downloads them.
    for outsider in ("inference", "erin"):
        with pytest.raises(grpc.RpcError) as denied:
            _download(as_user(outsider), "churn", 2)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert v.provenance == "claimed" and v.trained_on_personal_data and v.team == "risk"
    assert len(_events(sqlite_runtime, "registry.CreateModelVersion")) == 2
    assert len(_events(sqlite_runtime, "registry.DownloadWeights")) == 1
    assert [e.principal for e in _events(sqlite_runtime, "model.weights")] == ["service/inference", "user/erin"]
    assert _uploads(sqlite_runtime) == []  # the upload record goes with the version's insert


def test_the_blob_never_holds_a_run_of_plaintext(as_user, sqlite_runtime) -> None:
    data = _weights()
    _upload(as_user("alice"), "m", data)
    blob = sqlite_runtime.blobs.path_of(_row(sqlite_runtime, "m", 1).blob_digest).read_bytes()
    # Any 16-byte run of plaintext contains one of these 8-byte aligned pieces.
    pieces = {data[i : i + 8] for i in range(0, len(data) - 7, 8)}
    assert not any(blob[i : i + 8] in pieces for i in range(len(blob) - 7))
    assert data[:16] not in blob and data[-16:] not in blob


@pytest.mark.parametrize("payload", ["pickle", "zip", "text", "truncated"])
def test_non_safetensors_uploads_are_refused_and_leave_nothing(as_user, sqlite_runtime, payload) -> None:
    import io
    import pickle

    import torch

    if payload == "pickle":
        data = pickle.dumps({"w": np.ones(4)})
    elif payload == "zip":
        buffer = io.BytesIO()
        torch.save({"w": torch.ones(4)}, buffer)
        data = buffer.getvalue()
    elif payload == "text":
        data = b"def model(): pass\n" * 100
    else:
        data = _weights()[:-100]
    with pytest.raises(grpc.RpcError) as err:
        _upload(as_user("alice"), "bad", data)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(err.value) == ["weights"]
    assert list(sqlite_runtime.blobs.digests()) == []
    assert list((sqlite_runtime.blobs.root / "tmp").iterdir()) == []
    with pytest.raises(grpc.RpcError) as missing:
        as_user("alice").GetModel(registry_pb2.GetModelRequest(name="bad"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_metadata_must_come_first(as_user) -> None:
    with pytest.raises(grpc.RpcError) as err:
        as_user("alice").CreateModelVersion(iter([registry_pb2.CreateModelVersionRequest(chunk=b"x")]), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(err.value) == ["metadata"]


def test_a_failed_insert_removes_the_committed_blob(sqlite_runtime, monkeypatch) -> None:
    registry = ModelRegistry(sqlite_runtime)

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(registry, "_insert_version", broken)
    with pytest.raises(RuntimeError):
        registry.create_version(sqlite_runtime.policies.engine.directory.principals["user/alice"], VersionSpec("m"), [_weights(n=10)])
    assert list(sqlite_runtime.blobs.digests()) == []
    assert _uploads(sqlite_runtime) == []


def _uploads(rt: Runtime) -> list:
    from privet.governance.store.registry_tables import ModelUpload

    with rt.read() as session:
        return list(session.scalars(select(ModelUpload)))


def _tamper(rt: Runtime, how: str) -> None:
    target = rt.blobs.path_of(_row(rt, "m", 1).blob_digest)
    blob = bytearray(target.read_bytes())
    if how == "flipped-bit":
        blob[len(blob) // 2] ^= 0x01
    elif how == "truncated":
        del blob[-100:]
    elif how == "dropped-last-chunk":
        del blob[HEADER + 2 * SEALED_CHUNK :]
    elif how == "swapped-chunks":
        first, second = blob[HEADER : HEADER + SEALED_CHUNK], blob[HEADER + SEALED_CHUNK : HEADER + 2 * SEALED_CHUNK]
        blob[HEADER : HEADER + 2 * SEALED_CHUNK] = second + first
    elif how == "blob-of-another-version":
        blob = bytearray(rt.blobs.path_of(_row(rt, "m", 2).blob_digest).read_bytes())
    target.write_bytes(bytes(blob))


@pytest.mark.parametrize("how", ["flipped-bit", "truncated", "dropped-last-chunk", "swapped-chunks", "blob-of-another-version"])
def test_tampered_blobs_fail_with_data_loss(as_user, sqlite_runtime, how) -> None:
    alice = as_user("alice")
    data = _weights()
    _upload(alice, "m", data)
    _upload(alice, "m", data)  # the same plaintext: only the version binding tells the blobs apart
    _tamper(sqlite_runtime, how)
    with pytest.raises(grpc.RpcError) as err:
        _download(alice, "m", 1)
    assert err.value.code() == grpc.StatusCode.DATA_LOSS
    assert "integrity" in err.value.details()
    assert _download(alice, "m", 2) == data


def test_rotation_rewraps_keys_and_leaves_blobs_identical(as_user, sqlite_runtime) -> None:
    alice, admin = as_user("alice"), as_user("admin")
    data = [_weights(0), _weights(1, n=1000)]
    for d in data:
        _upload(alice, "m", d)
    before = {v: sqlite_runtime.blobs.path_of(_row(sqlite_runtime, "m", v).blob_digest).read_bytes() for v in (1, 2)}
    keys_before = {v: _row(sqlite_runtime, "m", v).wrapped_key for v in (1, 2)}
    reply = admin.RotateKeys(registry_pb2.RotateKeysRequest(), timeout=30)
    assert (reply.key_id, reply.rewrapped) == ("kek-2", 2)
    for v in (1, 2):
        row = _row(sqlite_runtime, "m", v)
        assert row.kek_id == "kek-2" and row.wrapped_key != keys_before[v]
        assert sqlite_runtime.blobs.path_of(row.blob_digest).read_bytes() == before[v]
        assert _download(alice, "m", v) == data[v - 1]
    assert alice.GetModelVersion(registry_pb2.GetModelVersionRequest(name="m", version=1)).key_id == "kek-2"
    (event,) = _events(sqlite_runtime, "registry.RotateKeys")
    assert event.principal == "user/admin" and json.loads(event.details)["rewrapped"] == 2
    with pytest.raises(grpc.RpcError) as err:
        alice.RotateKeys(registry_pb2.RotateKeysRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_revoke_with_erase_makes_weights_unrecoverable(as_user, sqlite_runtime) -> None:
    alice, bob = as_user("alice"), as_user("bob")
    _upload(alice, "m", _weights())
    v = bob.RevokeModelVersion(registry_pb2.RevokeModelVersionRequest(name="m", version=1, erase=True, reason="leaked training data"), timeout=10)
    assert v.stage == registry_pb2.STAGE_REVOKED and v.erased and v.key_id == "" and v.revoked_reason == "leaked training data"
    row = _row(sqlite_runtime, "m", 1)
    assert row.wrapped_key is None and row.kek_id is None
    with pytest.raises(grpc.RpcError) as err:
        _download(alice, "m", 1)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # The ciphertext may remain, but nothing in the database or key directory opens it:
    # each KEK only unwraps data keys, and no wrapped data key for it is left anywhere.
    with sqlite_runtime.read() as session:
        assert all(r.wrapped_key is None for r in session.scalars(select(ModelVersion)))
    (event,) = _events(sqlite_runtime, "registry.RevokeModelVersion")
    assert event.decision == "allow" and json.loads(event.details)["erase"] is True


# -- release gates over gRPC ------------------------------------------------------------------
def test_release_path_over_grpc_with_denials_named_and_audited(as_user, sqlite_runtime) -> None:
    alice, bob, dana = as_user("alice"), as_user("bob"), as_user("dana")
    _upload(alice, "m", _weights(n=1000), metrics={"accuracy": 0.91},
            guarantee=types_pb2.DPGuarantee(epsilon=2.0, delta=1e-6, **_DP_MECHANISM), lineage=types_pb2.Lineage(trained_by="user/alice"))
    # Claimed facts: presumed trained on personal data until an operator says otherwise.
    with pytest.raises(grpc.RpcError) as claimed:
        alice.RequestRelease(registry_pb2.RequestReleaseRequest(name="m", version=1), timeout=10)
    assert error_info(claimed.value)["policy_ids"] == "personal-data-needs-established-facts"
    with pytest.raises(grpc.RpcError) as not_operator:
        alice.DeclarePersonalData(registry_pb2.DeclareVersionPersonalDataRequest(name="m", version=1, personal=False, reason="mine"), timeout=10)
    assert not_operator.value.code() == grpc.StatusCode.PERMISSION_DENIED
    declared = as_user("admin").DeclarePersonalData(registry_pb2.DeclareVersionPersonalDataRequest(name="m", version=1, personal=False, reason="public data"), timeout=10)
    assert not declared.trained_on_personal_data and declared.personal_declared_by == "user/admin"
    with pytest.raises(grpc.RpcError) as early:
        bob.ReleaseModelVersion(registry_pb2.ReleaseModelVersionRequest(name="m", version=1), timeout=10)
    assert early.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as high:
        alice.RequestRelease(registry_pb2.RequestReleaseRequest(name="m", version=1, metric_thresholds={"accuracy": 0.95}), timeout=10)
    assert high.value.code() == grpc.StatusCode.PERMISSION_DENIED
    info = error_info(high.value)
    assert info["policy_ids"] == "metrics-meet-thresholds"
    assert "metric 'accuracy' is 0.91, below the threshold 0.95" in info["reasons"]
    assert _row(sqlite_runtime, "m", 1).stage == Stage.REGISTERED
    v = alice.RequestRelease(registry_pb2.RequestReleaseRequest(name="m", version=1, metric_thresholds={"accuracy": 0.9}), timeout=10)
    assert v.stage == registry_pb2.STAGE_CANDIDATE and v.requested_by == "user/alice" and dict(v.metric_thresholds) == {"accuracy": 0.9}
    with pytest.raises(grpc.RpcError) as own:
        bob.ApproveRelease(registry_pb2.ApproveReleaseRequest(name="m", version=1), timeout=10)
    assert own.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(own.value)["policy_ids"] == "approval-only-by-approver"
    v = dana.ApproveRelease(registry_pb2.ApproveReleaseRequest(name="m", version=1, note="looks good"), timeout=10)
    assert v.stage == registry_pb2.STAGE_APPROVED and [(a.principal, a.note) for a in v.approvals] == [("user/dana", "looks good")]
    v = bob.ReleaseModelVersion(registry_pb2.ReleaseModelVersionRequest(name="m", version=1), timeout=10)
    assert v.stage == registry_pb2.STAGE_RELEASED and v.released_by == "user/bob"
    assert bob.GetModel(registry_pb2.GetModelRequest(name="m")).released_version == 1
    assert bob.GetModelVersion(registry_pb2.GetModelVersionRequest(name="m", alias="released")).version == 1
    decisions = [(e.action, e.decision, json.loads(e.policy_ids)) for e in _events_for(sqlite_runtime, "model/m/1")]
    assert decisions == [
        ("registry.CreateModelVersion", "allow", []),
        ("registry.RequestRelease", "deny", ["personal-data-needs-established-facts"]),
        ("registry.DeclarePersonalData", "allow", []),
        ("registry.ReleaseModelVersion", "deny", []),
        ("registry.RequestRelease", "deny", ["metrics-meet-thresholds"]),
        ("registry.RequestRelease", "allow", ["release-request-by-owner"]),
        ("registry.ApproveRelease", "deny", ["approval-only-by-approver"]),
        ("registry.ApproveRelease", "allow", ["release-approve-by-approver"]),
        ("registry.ReleaseModelVersion", "allow", ["release-publish-by-release-manager"]),
    ]
    denied = [json.loads(e.details) for e in _events_for(sqlite_runtime, "model/m/1") if e.decision == "deny" and e.policy_ids != "[]"]
    assert all(d["reasons"] for d in denied)


def _events_for(rt: Runtime, resource: str) -> list[AuditEvent]:
    with rt.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.resource == resource).order_by(AuditEvent.seq)))


# -- every gate, allowed and denied (governance level, the same code the servicer calls) --------
def _principal(rt: Runtime, who: str):
    return rt.policies.engine.directory.principals[who]


def _version(registry: ModelRegistry, rt: Runtime, *, by: str = "user/alice", trainer: str = "", **facts) -> int:
    """A version of model m. Registered by the training service (`by="service/training"`),
    for a job `trainer` (else alice) ran, its facts are established (tests/established.py);
    uploaded by a user they are claimed, and, unless it says it was trained on personal
    data, an operator declares it not personal, so that the gate under test decides."""
    if by == "service/training":
        personal = facts.pop("trained_on_personal_data", False)
        return establish_version(registry, rt, VersionSpec("m", **facts), _weights(n=100), submitted_by=trainer or "user/alice", personal=personal).version
    spec = VersionSpec("m", lineage={"trained_by": trainer} if trainer else {}, **facts)
    v = registry.create_version(_principal(rt, by), spec, [_weights(n=100)]).version
    if not facts.get("trained_on_personal_data"):
        registry.declare_personal_data(_principal(rt, "user/admin"), "m", v, personal=False, reason="test: public data")
    return v


def _denied(fn, *args, **kwargs) -> PermissionDenied:
    with pytest.raises(PermissionDenied) as err:
        fn(*args, **kwargs)
    assert err.value.reasons and len(err.value.reasons) >= len(err.value.policy_ids)
    return err.value


@pytest.fixture
def registry(sqlite_runtime) -> ModelRegistry:
    return ModelRegistry(sqlite_runtime)


PERSONAL = dict(trained_on_personal_data=True, by="service/training")


@pytest.mark.parametrize(
    "facts,allowed,policy",
    [
        (dict(), True, "release-request-by-owner"),
        (dict(trained_on_personal_data=False, guarantee=_dp(50.0, 1e-3)), True, "release-request-by-owner"),
        (dict(PERSONAL), False, "dp-guarantee-required"),
        (dict(PERSONAL, guarantee=_dp(8.0, 1e-5)), True, "release-request-by-owner"),
        (dict(PERSONAL, guarantee=_dp(8.001, 1e-5)), False, "dp-epsilon-at-most-8"),
        (dict(PERSONAL, guarantee=_dp(1.0, 1.1e-5)), False, "dp-delta-at-most-1e-5"),
        (dict(metrics={"accuracy": 0.9}), True, "release-request-by-owner"),
        (dict(metrics={"accuracy": 0.89}), False, "metrics-meet-thresholds"),
        (dict(metrics={"f1": 0.99}), False, "metrics-meet-thresholds"),
        (dict(trained_on_personal_data=True, guarantee=_dp(1.0, 1e-6)), False, "personal-data-needs-established-facts"),
        (dict(trained_on_personal_data=False, guarantee=_dp(1.0, 1e-6), by="user/alice"), True, "release-request-by-owner"),
    ],
    ids=["plain", "no-personal-data-any-eps", "personal-no-guarantee", "eps-8-delta-1e-5", "eps-above-8", "delta-above-1e-5", "metric-met", "metric-below", "metric-missing",
         "claimed-guarantee-never-counts", "claimed-declared-not-personal"],
)
def test_request_gates(registry, sqlite_runtime, facts, allowed, policy) -> None:
    v = _version(registry, sqlite_runtime, **facts)
    alice = _principal(sqlite_runtime, "user/alice")
    thresholds = {"accuracy": 0.9} if "metrics" in facts else {}
    if allowed:
        assert registry.request_release(alice, "m", v, thresholds=thresholds).stage == Stage.CANDIDATE
        event = _events_for(sqlite_runtime, f"model/m/{v}")[-1]
        assert event.decision == "allow" and json.loads(event.policy_ids) == [policy]
    else:
        err = _denied(registry.request_release, alice, "m", v, thresholds=thresholds)
        assert err.policy_ids == (policy,)
        assert _row(sqlite_runtime, "m", v).stage == Stage.REGISTERED
        event = _events_for(sqlite_runtime, f"model/m/{v}")[-1]
        assert event.decision == "deny" and json.loads(event.policy_ids) == [policy]
        assert json.loads(event.details)["reasons"] == list(err.reasons)


def test_request_by_whom(registry, sqlite_runtime) -> None:
    v = _version(registry, sqlite_runtime)
    assert _denied(registry.request_release, _principal(sqlite_runtime, "user/dana"), "m", v).policy_ids == (DEFAULT_DENY,)
    assert registry.request_release(_principal(sqlite_runtime, "user/bob"), "m", v).requested_by == "user/bob"
    assert json.loads(_events_for(sqlite_runtime, f"model/m/{v}")[-1].policy_ids) == ["release-request-by-release-manager"]


def test_the_reasons_say_what_is_unmet(registry, sqlite_runtime) -> None:
    v = _version(registry, sqlite_runtime, by="service/training", trained_on_personal_data=True, guarantee=_dp(9.5, 1e-4), metrics={"auc": 0.7})
    err = _denied(registry.request_release, _principal(sqlite_runtime, "user/alice"), "m", v, thresholds={"auc": 0.8})
    assert set(err.policy_ids) == {"dp-epsilon-at-most-8", "dp-delta-at-most-1e-5", "metrics-meet-thresholds"}
    text = " | ".join(err.reasons)
    assert "epsilon 9.5, above the limit of 8" in text and "delta 0.0001, above the limit of 1e-05" in text
    assert "metric 'auc' is 0.7, below the threshold 0.8" in text


@pytest.mark.parametrize(
    "owner,trainer,requester,approver,allowed,policies",
    [
        ("user/alice", "", "user/alice", "user/dana", True, ("release-approve-by-approver",)),
        ("service/training", "user/dana", "user/bob", "user/dana", False, ("approval-not-by-trainer",)),
        ("user/alice", "user/dana", "user/alice", "user/dana", True, ("release-approve-by-approver",)),
        ("user/dana", "", "user/dana", "user/dana", False, ("approval-not-by-requester", "approval-not-by-trainer")),
        ("user/alice", "", "user/alice", "user/admin", False, ("approval-only-by-approver",)),
        ("user/alice", "", "user/bob", "user/bob", False, ("approval-not-by-requester", "approval-only-by-approver")),
    ],
    ids=["independent-approver", "trainer-approves", "a-user-cannot-name-another-trainer", "requester-and-trainer", "admin-is-no-approver", "release-manager-is-no-approver"],
)
def test_separation_of_duties(registry, sqlite_runtime, owner, trainer, requester, approver, allowed, policies) -> None:
    v = _version(registry, sqlite_runtime, by=owner, trainer=trainer)
    registry.request_release(_principal(sqlite_runtime, requester), "m", v)
    who = _principal(sqlite_runtime, approver)
    if allowed:
        assert registry.approve(who, "m", v).stage == Stage.APPROVED
        assert json.loads(_events_for(sqlite_runtime, f"model/m/{v}")[-1].policy_ids) == list(policies)
    else:
        assert set(_denied(registry.approve, who, "m", v).policy_ids) == set(policies)
        assert _row(sqlite_runtime, "m", v).stage == Stage.CANDIDATE


def test_the_requester_never_approves(registry, sqlite_runtime) -> None:
    """dana owns model m (registered its first version) and trains a second through the
    training service. dana may request its release as the owner, but not approve it."""
    _version(registry, sqlite_runtime, by="user/dana")
    v = _version(registry, sqlite_runtime, by="service/training", trainer="user/dana")
    dana = _principal(sqlite_runtime, "user/dana")
    assert registry.request_release(dana, "m", v).stage == Stage.CANDIDATE
    assert set(_denied(registry.approve, dana, "m", v).policy_ids) == {"approval-not-by-requester", "approval-not-by-trainer"}
    assert _denied(registry.approve, _principal(sqlite_runtime, "user/alice"), "m", v).policy_ids == ("approval-only-by-approver",)


def test_only_a_release_manager_releases(registry, sqlite_runtime) -> None:
    p = lambda who: _principal(sqlite_runtime, who)
    v = _version(registry, sqlite_runtime)
    registry.request_release(p("user/alice"), "m", v)
    registry.approve(p("user/dana"), "m", v)
    for who in ("user/admin", "user/alice", "user/dana", "service/training"):
        assert "release-only-by-release-manager" in _denied(registry.release, p(who), "m", v).policy_ids
    assert registry.release(p("user/bob"), "m", v).stage == Stage.RELEASED
    with pytest.raises(FailedPrecondition):
        registry.release(p("user/bob"), "m", v)


def test_metrics_are_rechecked_against_the_recorded_thresholds(registry, sqlite_runtime) -> None:
    """The thresholds fixed at request time bind later gates (a policy that only changed its
    mind later is not needed: the recorded facts are what every later gate sees)."""
    engine = sqlite_runtime.policies.engine
    facts = ReleaseFacts(version_id="x", model="m", version=1, stage=Stage.APPROVED, owner="user/alice", trainer="user/alice", requester="user/alice",
                         approvers=(), trained_on_personal_data=False, has_guarantee=False, epsilon=None, delta=None,
                         metrics={"accuracy": 0.5}, thresholds={"accuracy": 0.9})
    decision = engine.decide(_principal(sqlite_runtime, "user/bob"), "model.release", ("ModelVersion", "x"), {"caller": "user/bob"}, [facts.entity()])
    assert not decision.allowed and set(decision.policy_ids) == {"release-needs-approval", "metrics-meet-thresholds"}


def test_revocation_gate_and_stages(registry, sqlite_runtime) -> None:
    p = lambda who: _principal(sqlite_runtime, who)
    v = _version(registry, sqlite_runtime)
    assert _denied(lambda *a: registry.revoke(*a, reason="test"), p("user/alice"), "m", v).policy_ids == (DEFAULT_DENY,)
    assert registry.revoke(p("user/bob"), "m", v, reason="superseded").stage == Stage.REVOKED
    with pytest.raises(FailedPrecondition):
        registry.revoke(p("user/bob"), "m", v, reason="again")
    with pytest.raises(FailedPrecondition):
        registry.request_release(p("user/alice"), "m", v)
    assert registry.revoke(p("user/bob"), "m", v, erase=True, reason="erasure request").erased  # a revoked version may still be erased
    with pytest.raises(FailedPrecondition, match="already erased"):
        registry.revoke(p("user/bob"), "m", v, erase=True, reason="erasure request")


def test_bad_metadata_names_the_field(registry, sqlite_runtime) -> None:
    alice = _principal(sqlite_runtime, "user/alice")
    for spec, field in [
        (VersionSpec("no:colons"), "metadata.model_name"),
        (VersionSpec("m", metrics={"acc": float("nan")}), "metadata.metrics[acc]"),
        (VersionSpec("m", guarantee=_dp(1.0, 2.0)), "metadata.guarantee.delta"),
        (VersionSpec("m", expected_size=5), "metadata.expected_size"),
    ]:
        with pytest.raises(InvalidArgument) as err:
            registry.create_version(alice, spec, [_weights(n=10)])
        assert err.value.field == field
    assert list(sqlite_runtime.blobs.digests()) == []


# -- concurrency: SQLite and PostgreSQL, two runtimes (two "replicas") on one database ---------
def test_concurrent_transitions_never_skip_a_stage(runtime: Runtime) -> None:
    other = Runtime.open(runtime.home)
    try:
        registries = [ModelRegistry(runtime), ModelRegistry(other)]
        p = lambda who: _principal(runtime, who)
        v = registries[0].create_version(p("user/alice"), VersionSpec("m"), [_weights(n=100)]).version
        registries[0].declare_personal_data(p("user/admin"), "m", v, personal=False, reason="test: public data")
        steps = [
            (Stage.CANDIDATE, lambda r: r.request_release(p("user/alice"), "m", v)),
            (Stage.APPROVED, lambda r: r.approve(p("user/dana"), "m", v)),
            (Stage.RELEASED, lambda r: r.release(p("user/bob"), "m", v)),
        ]
        successes: list[str] = []
        unexpected: list[BaseException] = []
        lock = threading.Lock()
        start = threading.Barrier(9)

        def worker(k: int) -> None:
            registry = registries[k % 2]
            start.wait()
            for attempt in range(60):
                stage, step = steps[(k + attempt) % 3]
                try:
                    record = step(registry)
                except FailedPrecondition:
                    if registry.get_version("m", v).stage == Stage.RELEASED:
                        return
                    continue
                except BaseException as exc:
                    with lock:
                        unexpected.append(exc)
                    return
                assert record.stage == stage
                with lock:
                    successes.append(stage)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert unexpected == []
        assert sorted(successes, key=Stage.ORDER.index) == [Stage.CANDIDATE, Stage.APPROVED, Stage.RELEASED]
        allowed = [e for e in _events_for(runtime, f"model/m/{v}") if e.decision == "allow"]
        assert [(e.action, json.loads(e.details).get("from"), json.loads(e.details).get("to")) for e in allowed] == [
            ("registry.CreateModelVersion", None, None),
            ("registry.DeclarePersonalData", None, None),
            ("registry.RequestRelease", Stage.REGISTERED, Stage.CANDIDATE),
            ("registry.ApproveRelease", Stage.CANDIDATE, Stage.APPROVED),
            ("registry.ReleaseModelVersion", Stage.APPROVED, Stage.RELEASED),
        ]
        assert registries[1].get_version("m", v).stage == Stage.RELEASED
    finally:
        other.close()


# -- the CLI, in process, against the real servers ----------------------------------------------
def test_cli_register_release_download(cli, sqlite_runtime, tmp_path) -> None:
    data = _weights(n=300_000)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(data)
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"architecture": "mlp", "metrics": {"accuracy": 0.95}, "trained_on_personal_data": False,
                                "guarantee": _dp(4.0, 1e-6), "lineage": {"dataset_id": "ds1"}}))
    code, out, exc = cli("--as", "alice", "--json", "models", "register", "--name", "churn", "--weights", str(weights), "--metadata", str(meta))
    assert code == 0, (out, exc)
    assert json.loads(out)["version"] == 1  # one output contract: integers are numbers (docs/cli.md)
    assert json.loads(out)["provenance"] == "claimed" and json.loads(out)["trained_on_personal_data"] is True  # presumed
    code, _, exc = cli("--as", "alice", "release", "request", "churn:1")
    assert code != 0 and exc.code() == grpc.StatusCode.PERMISSION_DENIED
    code, out, exc = cli("--as", "admin", "--json", "models", "declare", "churn:1", "--not-personal", "--reason", "synthetic data")
    assert code == 0, (out, exc)
    assert json.loads(out)["personal_declared_by"] == "user/admin"
    assert cli("--as", "alice", "release", "request", "churn:1", "--threshold", "accuracy=0.9")[0] == 0
    code, _, exc = cli("--as", "alice", "release", "approve", "churn:1")
    assert code != 0 and isinstance(exc, grpc.RpcError) and exc.code() == grpc.StatusCode.PERMISSION_DENIED
    assert cli("--as", "dana", "release", "approve", "churn:1", "--note", "ok")[0] == 0
    assert cli("--as", "bob", "release", "publish", "churn:1")[0] == 0
    code, out, _ = cli("--as", "bob", "--json", "models", "list")
    assert code == 0 and json.loads(out)[0]["released_version"] == 1
    code, out, _ = cli("--as", "bob", "--json", "models", "show", "churn")
    assert code == 0 and json.loads(out)["versions"][0]["stage"] == "RELEASED"
    code, out, _ = cli("--as", "bob", "--json", "models", "show", "churn:1")
    assert code == 0 and json.loads(out)["approvals"][0]["principal"] == "user/dana"
    # The signed attestation, with the audit proofs of what it cites, checks offline.
    attestation = tmp_path / "churn-1.attestation.json"
    code, out, exc = cli("--as", "carol", "models", "attest", "churn:1", "--out", str(attestation))
    assert code == 0, (out, exc)
    keys = sqlite_runtime.home.keys
    verify = ("models", "verify-attestation", str(attestation), "--key", str(keys / "attestation.pub"), "--audit-key", str(keys / "audit.pub"))
    code, out, exc = cli(*verify, "--weights", str(weights))
    assert code == 0 and "verified" in out, (out, exc)
    altered = tmp_path / "altered.safetensors"
    altered.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    code, out, _ = cli(*verify, "--weights", str(altered))
    assert code == 1 and "FAILED" in out
    target = tmp_path / "out.safetensors"
    code, out, exc = cli("--as", "alice", "models", "download", "churn:1", "--out", str(target))
    assert code == 0, (out, exc)
    assert target.read_bytes() == data and not (tmp_path / "out.safetensors.part").exists()
    assert cli("--as", "bob", "release", "revoke", "churn:1", "--erase", "--reason", "test")[0] == 0
    code, _, exc = cli("--as", "alice", "models", "download", "churn:1", "--out", str(tmp_path / "gone"))
    assert code != 0 and exc.code() == grpc.StatusCode.FAILED_PRECONDITION and not (tmp_path / "gone").exists()
    code, _, exc = cli("--as", "alice", "models", "register", "--name", "p", "--weights", str(meta))
    assert code != 0 and exc.code() == grpc.StatusCode.INVALID_ARGUMENT


# -- crash safety --------------------------------------------------------------------------------
_UPLOADER = """
import pathlib, sys, time
from privet.governance.config import Home
from privet.governance.registry import ModelRegistry, VersionSpec
from privet.governance.runtime import Runtime

rt = Runtime.open(Home(pathlib.Path(sys.argv[1])))
data = pathlib.Path(sys.argv[2]).read_bytes()

def chunks():
    yield data[: len(data) // 2]
    print("halfway", flush=True)
    time.sleep(120)
    yield data[len(data) // 2 :]

ModelRegistry(rt, chunk_size=4096).create_version(rt.policies.engine.directory.principals["user/alice"], VersionSpec("m"), chunks())
"""


def test_sigkill_during_an_upload_leaves_no_version_and_no_blob(tmp_path) -> None:
    import os
    import pathlib
    import signal
    import subprocess
    import sys

    from tests.conftest import make_home

    home = make_home(tmp_path / "home")
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(_weights(n=100_000))
    repo = pathlib.Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", _UPLOADER, str(home.root), str(weights)], cwd=repo, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "halfway"
        rt = Runtime.open(home)
        rt.close()
        assert len(list((rt.blobs.root / "tmp").iterdir())) == 1  # in flight, left alone while its writer lives
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    rt = Runtime.open(home)  # the restart
    try:
        assert list((rt.blobs.root / "tmp").iterdir()) == []
        assert list(rt.blobs.digests()) == []
        with rt.read() as session:
            assert list(session.scalars(select(ModelVersion))) == []
    finally:
        rt.close()


_DIES_AFTER_COMMIT = _UPLOADER.replace(
    "ModelRegistry(rt, chunk_size=4096).create_version(",
    """def stuck(*args, **kwargs):
    print("committed", flush=True)
    time.sleep(120)

registry = ModelRegistry(rt, chunk_size=4096)
registry._insert_version = stuck
registry.create_version(""",
).replace('    print("halfway", flush=True)\n    time.sleep(120)\n', "")


def test_sigkill_between_blob_commit_and_registration_leaves_no_blob(tmp_path) -> None:
    import os
    import pathlib
    import signal
    import subprocess
    import sys

    from privet.governance.store.registry_tables import ModelUpload
    from tests.conftest import make_home

    home = make_home(tmp_path / "home")
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(_weights(n=100_000))
    repo = pathlib.Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", _DIES_AFTER_COMMIT, str(home.root), str(weights)], cwd=repo, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "committed"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    rt = Runtime.open(home)
    try:
        assert len(list(rt.blobs.digests())) == 1  # committed, never registered
        other = rt.blobs.put([b"PAR1 a dataset blob, not weights"])[0]
        ModelRegistry(rt)  # the registry's start
        assert list(rt.blobs.digests()) == [other]
        with rt.read() as session:
            assert list(session.scalars(select(ModelUpload))) == []
            assert list(session.scalars(select(ModelVersion))) == []
        (event,) = _events(rt, "registry.SweepInterruptedUpload")
        assert event.decision == "info" and json.loads(event.details)["removed_blob"]
    finally:
        rt.close()

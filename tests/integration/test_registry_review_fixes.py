"""Review fixes of the model registry, end to end on real runtimes (SQLite; PostgreSQL where
two replicas race):

* a DP guarantee is complete and in range, or refused naming the field (an empty one read
  as epsilon 0 and passed every DP gate); personal data follows the dataset a lineage names;
* a huge epsilon on record denies, and never breaks revocation (Cedar's integers are 64-bit);
* no version is registered under a key-encryption key a rotation has replaced;
* an interrupted upload is swept even when the new process has the dead one's pid.
"""

from __future__ import annotations

import io
import json
import os
import random
import socket
import threading
import time
import uuid

import grpc
import numpy as np
import pytest
from safetensors.numpy import save
from sqlalchemy import select, update

from privet.common.v1 import types_pb2
from privet.governance.crypto import FileKeyring, seal_weights
from privet.governance.datasets.catalog import DatasetSpec, create_dataset
from privet.governance.datasets.formats import CsvDialect
from privet.governance.datasets.pipeline import AnonymisationSpec
from privet.governance.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from privet.governance.processes import process_identity
from privet.governance.registry import MAX_EPSILON, ModelRegistry, Stage, VersionSpec
from privet.governance.runtime import Runtime
from privet.governance.store.registry_tables import Model, ModelUpload, ModelVersion
from privet.governance.store.tables import AuditEvent
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from tests.established import establish_version
from tests.helpers import bad_request_fields, channel

GUARANTEE = {"epsilon": 3.0, "delta": 1e-6, "noise_multiplier": 1.1, "sample_rate": 0.01, "steps": 500, "accountant": "prv", "max_grad_norm": 1.0}


def _weights(n: int = 100, seed: int = 0) -> bytes:
    return save({"w": np.random.default_rng(seed).standard_normal(n).astype(np.float32)})


def _p(rt: Runtime, who: str):
    return rt.policies.engine.directory.principals[who]


def _row(rt: Runtime, name: str, version: int = 1) -> ModelVersion:
    with rt.read() as session:
        return session.scalars(select(ModelVersion).where(ModelVersion.model_name == name, ModelVersion.version == version)).one()


def _events(rt: Runtime, action: str) -> list[AuditEvent]:
    with rt.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)))


def _uploads(rt: Runtime) -> list[ModelUpload]:
    with rt.read() as session:
        return list(session.scalars(select(ModelUpload)))


@pytest.fixture
def registry(sqlite_runtime: Runtime) -> ModelRegistry:
    return ModelRegistry(sqlite_runtime)


# -- the DP guarantee --------------------------------------------------------------------------
def test_an_empty_guarantee_message_is_refused_naming_epsilon(servers, sqlite_runtime) -> None:
    meta = registry_pb2.ModelVersionMetadata(model_name="pii", trained_on_personal_data=True, guarantee=types_pb2.DPGuarantee())
    requests = iter([registry_pb2.CreateModelVersionRequest(metadata=meta), registry_pb2.CreateModelVersionRequest(chunk=_weights())])
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
        registry.create_version(_p(sqlite_runtime, "user/alice"), VersionSpec("m", trained_on_personal_data=True, guarantee=guarantee), [_weights()])
    assert err.value.field == f"metadata.guarantee.{field}"
    assert list(sqlite_runtime.blobs.digests()) == [] and _uploads(sqlite_runtime) == []


@pytest.mark.parametrize("field,change", [
    ("epsilon", {"epsilon": 0.3}),                                # σ 1.1, q 0.01, 100 steps give more than that
    ("epsilon", {"noise_multiplier": 0.3}),                       # the same ε with far less noise
    ("accountant", {"accountant": "made-up"}),                    # an accountant nobody can check it against
])
def test_a_guarantee_its_own_mechanism_contradicts_is_refused(registry, sqlite_runtime, field, change) -> None:
    with pytest.raises(InvalidArgument) as err:
        registry.create_version(_p(sqlite_runtime, "user/alice"), VersionSpec("m", trained_on_personal_data=True, guarantee=GUARANTEE | change), [_weights()])
    assert err.value.field == f"metadata.guarantee.{field}"
    assert list(sqlite_runtime.blobs.digests()) == [] and _uploads(sqlite_runtime) == []


def test_a_complete_guarantee_up_to_the_largest_epsilon_registers(registry, sqlite_runtime) -> None:
    alice = _p(sqlite_runtime, "user/alice")
    for guarantee in (GUARANTEE, GUARANTEE | {"epsilon": MAX_EPSILON, "sample_rate": 1.0, "steps": 1}):
        assert registry.create_version(alice, VersionSpec("m", guarantee=guarantee), [_weights()]).guarantee == guarantee
    registry.declare_personal_data(_p(sqlite_runtime, "user/admin"), "m", 1, personal=False, reason="test: public data")
    assert registry.request_release(alice, "m", 1).stage == Stage.CANDIDATE


# -- personal data, from the dataset's record ----------------------------------------------------
def _dataset(rt: Runtime, name: str, *, personal: bool):
    rng = random.Random(0)
    if personal:  # e-mail addresses: detected, and masked, at ingestion
        csv = "email,age,label\n" + "".join(f"user{i}@example.com,{rng.randint(18, 90)},{i % 2}\n" for i in range(200))
    else:
        csv = "age,spend,label\n" + "".join(f"{rng.randint(18, 90)},{rng.random() * 100:.2f},{i % 2}\n" for i in range(200))
    return create_dataset(rt, "user/alice", DatasetSpec(name, "csv", "default", AnonymisationSpec(), CsvDialect(), 8.0, 1e-5), [csv.encode()])


def test_personal_data_follows_the_dataset_the_lineage_names(registry, sqlite_runtime) -> None:
    alice = _p(sqlite_runtime, "user/alice")
    patients, plain = _dataset(sqlite_runtime, "patients", personal=True), _dataset(sqlite_runtime, "plain", personal=False)
    for name, lineage in [("by-id", {"dataset_id": patients.id}), ("by-name", {"dataset_id": "patients"}),
                          ("by-digest", {"dataset_digest": patients.blob_digest}), ("by-raw-digest", {"raw_digest": patients.raw_digest})]:
        v = registry.create_version(alice, VersionSpec(name, lineage=lineage, trained_on_personal_data=False), [_weights()])
        assert v.trained_on_personal_data, name  # the uploader cannot clear what the platform knows
        with pytest.raises(PermissionDenied) as err:
            registry.request_release(alice, name, 1)
        assert set(err.value.policy_ids) == {"dp-guarantee-required", "personal-data-needs-established-facts"}
        (event,) = [e for e in _events(sqlite_runtime, "registry.CreateModelVersion") if e.resource == f"model/{name}/1"]
        details = json.loads(event.details)
        assert details["trained_on_personal_data"] is True and details["stated_personal_data"] is False
        # Not even an operator clears what the platform knows about the data it names.
        with pytest.raises(FailedPrecondition, match="names personal data"):
            registry.declare_personal_data(_p(sqlite_runtime, "user/admin"), name, 1, personal=False, reason="no")
    # Whatever an uploader says, a claimed version is presumed personal; an operator may
    # declare otherwise where its lineage names no personal data.
    for name, lineage in (("clean", {"dataset_id": plain.id}), ("elsewhere", {"dataset_id": "unknown"})):
        assert registry.create_version(alice, VersionSpec(name, lineage=lineage), [_weights()]).trained_on_personal_data
        assert not registry.declare_personal_data(_p(sqlite_runtime, "user/admin"), name, 1, personal=False, reason="public data").trained_on_personal_data


# -- rows already on record: huge epsilon, empty guarantee ---------------------------------------
def _set(rt: Runtime, name: str, **values) -> None:
    rt.write(lambda session: session.execute(update(ModelVersion).where(ModelVersion.model_name == name).values(**values)))


def test_a_huge_epsilon_on_record_is_denied_and_still_revocable(registry, sqlite_runtime) -> None:
    p = lambda who: _p(sqlite_runtime, who)
    establish_version(registry, sqlite_runtime, VersionSpec("pii", guarantee=GUARANTEE), _weights())
    registry.create_version(p("user/alice"), VersionSpec("plain", guarantee=GUARANTEE), [_weights()])
    registry.declare_personal_data(p("user/admin"), "plain", 1, personal=False, reason="test: public data")
    for name in ("pii", "plain"):
        _set(sqlite_runtime, name, dp_epsilon=1e16)  # registered before the bound existed
    with pytest.raises(PermissionDenied) as err:
        registry.request_release(p("user/alice"), "pii", 1)
    assert err.value.policy_ids == ("dp-epsilon-at-most-8",) and "epsilon 1e+16" in err.value.reasons[0]
    assert registry.request_release(p("user/alice"), "plain", 1).stage == Stage.CANDIDATE  # no personal data: epsilon is moot
    assert registry.revoke(p("user/bob"), "pii", 1, reason="leak").stage == Stage.REVOKED
    assert registry.revoke(p("user/bob"), "pii", 1, erase=True, reason="leak").erased
    decisions = [(e.action, e.decision) for e in _events(sqlite_runtime, "registry.RevokeModelVersion")]
    assert decisions == [("registry.RevokeModelVersion", "allow")] * 2


def test_an_empty_guarantee_on_record_is_no_guarantee(registry, sqlite_runtime) -> None:
    alice = _p(sqlite_runtime, "user/alice")
    establish_version(registry, sqlite_runtime, VersionSpec("pii", guarantee=GUARANTEE), _weights())
    _set(sqlite_runtime, "pii", dp_epsilon=0.0, dp_delta=0.0)  # what an empty DPGuarantee used to register
    with pytest.raises(PermissionDenied) as err:
        registry.request_release(alice, "pii", 1)
    assert err.value.policy_ids == ("dp-guarantee-required",)


# -- rotation and uploads in flight --------------------------------------------------------------
def _drop_old_keys_and_download(rt: Runtime, name: str, versions: dict[int, bytes]) -> None:
    """What the operators guide allows once a rotation completed: remove the old key files."""
    active = FileKeyring(rt.home.keys).active_id
    for path in rt.home.keys.glob("kek-*.key"):
        if path.stem != active:
            path.unlink()
    fresh = ModelRegistry(rt, keyring=FileKeyring(rt.home.keys))
    for version, data in versions.items():
        assert _row(rt, name, version).kek_id == active
        assert b"".join(fresh.download(_p(rt, "user/alice"), name, version)) == data


def test_a_rotation_while_an_upload_streams_leaves_no_version_under_the_old_key(registry, sqlite_runtime) -> None:
    alice = _p(sqlite_runtime, "user/alice")
    first, second = _weights(seed=1), _weights(n=200_000, seed=2)
    registry.create_version(alice, VersionSpec("m"), [first])
    streaming, rotated = threading.Event(), threading.Event()

    def chunks():
        yield second[:1000]  # sealing began: the data key is wrapped under kek-1
        streaming.set()
        rotated.wait(30)
        yield second[1000:]

    result: dict = {}
    uploader = threading.Thread(target=lambda: result.setdefault("v", registry.create_version(alice, VersionSpec("m"), chunks())))
    uploader.start()
    assert streaming.wait(30)
    assert registry.rotate_keys(_p(sqlite_runtime, "user/admin")) == ("kek-2", 1)
    rotated.set()
    uploader.join(30)
    assert result["v"].key_id == "kek-2"
    (event,) = [e for e in _events(sqlite_runtime, "registry.CreateModelVersion") if e.resource == "model/m/2"]
    assert json.loads(event.details)["kek_id"] == "kek-2"
    _drop_old_keys_and_download(sqlite_runtime, "m", {1: first, 2: second})


def test_an_upload_whose_old_key_file_was_removed_meanwhile_is_refused_cleanly(registry, sqlite_runtime) -> None:
    data = _weights(n=50_000)

    def chunks():
        yield data[:1000]
        registry.rotate_keys(_p(sqlite_runtime, "user/admin"))
        (sqlite_runtime.home.keys / "kek-1.key").unlink()  # the operator, a little early
        yield data[1000:]

    with pytest.raises(FailedPrecondition, match="kek-1"):
        registry.create_version(_p(sqlite_runtime, "user/alice"), VersionSpec("m"), chunks())
    assert list(sqlite_runtime.blobs.digests()) == [] and _uploads(sqlite_runtime) == []


def test_a_rotation_between_upload_record_and_registration_rewraps_the_record(registry, sqlite_runtime, monkeypatch) -> None:
    data = _weights(n=50_000)
    blobs = sqlite_runtime.blobs
    make_writer = blobs.writer

    def writer_that_rotates_at_commit(*args, **kwargs):
        writer = make_writer(*args, **kwargs)
        commit = writer.commit

        def rotate_then_commit() -> str:
            (upload,) = _uploads(sqlite_runtime)
            assert upload.kek_id == "kek-1"  # recorded under the old key, not registered yet
            registry.rotate_keys(_p(sqlite_runtime, "user/admin"))
            assert _uploads(sqlite_runtime)[0].kek_id == "kek-2"
            return commit()

        writer.commit = rotate_then_commit
        return writer

    monkeypatch.setattr(blobs, "writer", writer_that_rotates_at_commit)
    assert registry.create_version(_p(sqlite_runtime, "user/alice"), VersionSpec("m"), [data]).key_id == "kek-2"
    (event,) = _events(sqlite_runtime, "registry.RotateKeys")
    assert json.loads(event.details)["uploads_rewrapped"] == 1
    monkeypatch.undo()
    _drop_old_keys_and_download(sqlite_runtime, "m", {1: data})


class _RotatesWhileRegistering:
    """A keyring that, the first time the registration asks which key is current (holding its
    upload record), has another replica make a new key current and start rewrapping, then
    answers with the key that was current when it was asked."""

    def __init__(self, keyring: FileKeyring, rotate) -> None:
        self._keyring, self._rotate, self.armed, self.rotation = keyring, rotate, False, None

    def __getattr__(self, name: str):
        return getattr(self._keyring, name)

    @property
    def active_id(self) -> str:
        current = self._keyring.active_id
        if self.armed:
            self.armed = False
            self.rotation = threading.Thread(target=self._rotate)
            self.rotation.start()
            deadline = time.monotonic() + 10
            while self._keyring.active_id == current and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.5)  # let the other replica reach its rewrap query
        return current


def test_a_rotation_by_another_replica_during_registration_is_not_missed(runtime: Runtime) -> None:
    """The registration read kek-1 as current; the other replica's rotation, which made kek-2
    current meanwhile, must still find and rewrap the version it registers."""
    other = Runtime.open(runtime.home)
    try:
        rotator = ModelRegistry(other)
        keyring = _RotatesWhileRegistering(FileKeyring(runtime.home.keys), lambda: rotator.rotate_keys(_p(other, "user/admin")))
        registry = ModelRegistry(runtime, keyring=keyring)
        data = _weights(n=20_000)
        keyring.armed = True
        registry.create_version(_p(runtime, "user/alice"), VersionSpec("m"), [data])
        assert keyring.rotation is not None
        keyring.rotation.join(30)
        assert _row(runtime, "m").kek_id == "kek-2"  # registered under kek-1, rewrapped by the rotation
        _drop_old_keys_and_download(runtime, "m", {1: data})
    finally:
        other.close()


# -- an interrupted upload, and a new process with the dead one's pid ------------------------------
def _interrupted_upload(rt: Runtime, host: str) -> str:
    """What a process killed between blob commit and registration leaves: a committed blob
    and its upload record. Returns the blob's digest."""
    version_id = uuid.uuid4().hex
    sealed_bytes = io.BytesIO()
    sealed = seal_weights(io.BytesIO(_weights(n=1000)), sealed_bytes, version_id=version_id, keyring=FileKeyring(rt.home.keys))
    digest, _ = rt.blobs.put([sealed_bytes.getvalue()])
    upload = ModelUpload(version_id=version_id, model_name="m", kek_id=sealed.kek_id, wrapped_key=sealed.wrapped_key, host=host, pid=os.getpid(), started_us=1)
    rt.write(lambda session: session.add(upload))
    return digest


def test_an_upload_left_by_an_earlier_process_with_this_pid_is_swept(sqlite_runtime) -> None:
    pid, start = process_identity().split(".")
    assert int(pid) == os.getpid()
    here = socket.gethostname()
    earlier = _interrupted_upload(sqlite_runtime, f"{here}/{pid}.{int(start) - 1}")  # the container restarted: pid 1 again
    ours = _interrupted_upload(sqlite_runtime, f"{here}/{pid}.{start}")  # this very process, still uploading
    elsewhere = _interrupted_upload(sqlite_runtime, f"another-host/{pid}.{int(start) - 1}")
    assert ModelRegistry(sqlite_runtime, sweep=False).sweep_interrupted_uploads() == 1
    assert set(sqlite_runtime.blobs.digests()) == {ours, elsewhere}
    assert sorted(u.host for u in _uploads(sqlite_runtime)) == sorted([f"{here}/{pid}.{start}", f"another-host/{pid}.{int(start) - 1}"])
    (event,) = _events(sqlite_runtime, "registry.SweepInterruptedUpload")
    assert json.loads(event.details)["removed_blob"] == earlier


def test_the_uploads_own_record_names_this_incarnation(registry, sqlite_runtime, monkeypatch) -> None:
    seen: list[str] = []
    insert = registry._insert_version

    def look_then_insert(*args, **kwargs):
        seen.extend(u.host for u in _uploads(sqlite_runtime))
        assert ModelRegistry(sqlite_runtime, sweep=False).sweep_interrupted_uploads() == 0  # alive: never swept
        return insert(*args, **kwargs)

    monkeypatch.setattr(registry, "_insert_version", look_then_insert)
    registry.create_version(_p(sqlite_runtime, "user/alice"), VersionSpec("m"), [_weights()])
    assert seen == [f"{socket.gethostname()}/{process_identity()}"]
    assert _uploads(sqlite_runtime) == []

"""No model version is registered under a key-encryption key that a rotation has replaced:
not while its upload streams, not between its upload record and its registration, and not
when another replica rotates meanwhile (SQLite; SQLite and PostgreSQL for the replicas)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from privet.governance.crypto import FileKeyring
from privet.governance.errors import FailedPrecondition
from privet.governance.registry import ModelRegistry, VersionSpec
from privet.governance.runtime import Runtime
from tests.integration._registry_support import audit_events, principal, uploads, version_row, weights


@pytest.fixture
def registry(sqlite_runtime: Runtime) -> ModelRegistry:
    return ModelRegistry(sqlite_runtime)


def _drop_old_keys_and_download(rt: Runtime, name: str, versions: dict[int, bytes]) -> None:
    """What the operators guide allows once a rotation completed: remove the old key files."""
    active = FileKeyring(rt.home.keys).active_id
    for path in rt.home.keys.glob("kek-*.key"):
        if path.stem != active:
            path.unlink()
    fresh = ModelRegistry(rt, keyring=FileKeyring(rt.home.keys))
    for version, data in versions.items():
        assert version_row(rt, name, version).kek_id == active
        assert b"".join(fresh.download(principal(rt, "user/alice"), name, version)) == data


def test_a_rotation_while_an_upload_streams_leaves_no_version_under_the_old_key(registry, sqlite_runtime) -> None:
    alice = principal(sqlite_runtime, "user/alice")
    first, second = weights(seed=1), weights(n=200_000, seed=2)
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
    assert registry.rotate_keys(principal(sqlite_runtime, "user/admin")) == ("kek-2", 1)
    rotated.set()
    uploader.join(30)
    assert result["v"].key_id == "kek-2"
    (event,) = [e for e in audit_events(sqlite_runtime, "registry.CreateModelVersion") if e.resource == "model/m/2"]
    assert json.loads(event.details)["kek_id"] == "kek-2"
    _drop_old_keys_and_download(sqlite_runtime, "m", {1: first, 2: second})


def test_an_upload_whose_old_key_file_was_removed_meanwhile_is_refused_cleanly(registry, sqlite_runtime) -> None:
    data = weights(n=50_000)

    def chunks():
        yield data[:1000]
        registry.rotate_keys(principal(sqlite_runtime, "user/admin"))
        (sqlite_runtime.home.keys / "kek-1.key").unlink()  # the operator, a little early
        yield data[1000:]

    with pytest.raises(FailedPrecondition, match="kek-1"):
        registry.create_version(principal(sqlite_runtime, "user/alice"), VersionSpec("m"), chunks())
    assert list(sqlite_runtime.blobs.digests()) == [] and uploads(sqlite_runtime) == []


def test_a_rotation_between_upload_record_and_registration_rewraps_the_record(registry, sqlite_runtime, monkeypatch) -> None:
    data = weights(n=50_000)
    blobs = sqlite_runtime.blobs
    make_writer = blobs.writer

    def writer_that_rotates_at_commit(*args, **kwargs):
        writer = make_writer(*args, **kwargs)
        commit = writer.commit

        def rotate_then_commit() -> str:
            (upload,) = uploads(sqlite_runtime)
            assert upload.kek_id == "kek-1"  # recorded under the old key, not registered yet
            registry.rotate_keys(principal(sqlite_runtime, "user/admin"))
            assert uploads(sqlite_runtime)[0].kek_id == "kek-2"
            return commit()

        writer.commit = rotate_then_commit
        return writer

    monkeypatch.setattr(blobs, "writer", writer_that_rotates_at_commit)
    assert registry.create_version(principal(sqlite_runtime, "user/alice"), VersionSpec("m"), [data]).key_id == "kek-2"
    (event,) = audit_events(sqlite_runtime, "registry.RotateKeys")
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
        keyring = _RotatesWhileRegistering(FileKeyring(runtime.home.keys), lambda: rotator.rotate_keys(principal(other, "user/admin")))
        registry = ModelRegistry(runtime, keyring=keyring)
        data = weights(n=20_000)
        keyring.armed = True
        registry.create_version(principal(runtime, "user/alice"), VersionSpec("m"), [data])
        assert keyring.rotation is not None
        keyring.rotation.join(30)
        assert version_row(runtime, "m").kek_id == "kek-2"  # registered under kek-1, rewrapped by the rotation
        _drop_old_keys_and_download(runtime, "m", {1: data})
    finally:
        other.close()

"""An upload interrupted between blob commit and registration is swept, even when the new
process has the dead one's pid (a restarted container's pid 1); a live upload never is."""

from __future__ import annotations

import io
import json
import os
import socket
import uuid

import pytest

from privet.governance.crypto import FileKeyring, seal_weights
from privet.governance.processes import process_identity
from privet.governance.registry import ModelRegistry, VersionSpec
from privet.governance.runtime import Runtime
from privet.governance.store.registry_tables import ModelUpload
from tests.integration._registry_support import audit_events, principal, uploads, weights


@pytest.fixture
def registry(sqlite_runtime: Runtime) -> ModelRegistry:
    return ModelRegistry(sqlite_runtime)


def _interrupted_upload(rt: Runtime, host: str) -> str:
    """What a process killed between blob commit and registration leaves: a committed blob
    and its upload record. Returns the blob's digest."""
    version_id = uuid.uuid4().hex
    sealed_bytes = io.BytesIO()
    sealed = seal_weights(io.BytesIO(weights(n=1000)), sealed_bytes, version_id=version_id, keyring=FileKeyring(rt.home.keys))
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
    assert sorted(u.host for u in uploads(sqlite_runtime)) == sorted([f"{here}/{pid}.{start}", f"another-host/{pid}.{int(start) - 1}"])
    (event,) = audit_events(sqlite_runtime, "registry.SweepInterruptedUpload")
    assert json.loads(event.details)["removed_blob"] == earlier


def test_the_uploads_own_record_names_this_incarnation(registry, sqlite_runtime, monkeypatch) -> None:
    seen: list[str] = []
    insert = registry._insert_version

    def look_then_insert(*args, **kwargs):
        seen.extend(u.host for u in uploads(sqlite_runtime))
        assert ModelRegistry(sqlite_runtime, sweep=False).sweep_interrupted_uploads() == 0  # alive: never swept
        return insert(*args, **kwargs)

    monkeypatch.setattr(registry, "_insert_version", look_then_insert)
    registry.create_version(principal(sqlite_runtime, "user/alice"), VersionSpec("m"), [weights()])
    assert seen == [f"{socket.gethostname()}/{process_identity()}"]
    assert uploads(sqlite_runtime) == []

"""Personal data follows the dataset a model's lineage names, whatever the uploader states,
and not even an operator clears what the platform knows (real runtime, SQLite)."""

from __future__ import annotations

import json
import random

import pytest

from privet.governance.datasets.catalog import DatasetSpec, create_dataset
from privet.governance.datasets.formats import CsvDialect
from privet.governance.datasets.pipeline import AnonymisationSpec
from privet.governance.errors import FailedPrecondition, PermissionDenied
from privet.governance.registry import ModelRegistry, VersionSpec
from privet.governance.runtime import Runtime
from tests.integration._registry_support import audit_events, principal, weights


@pytest.fixture
def registry(sqlite_runtime: Runtime) -> ModelRegistry:
    return ModelRegistry(sqlite_runtime)


def _dataset(rt: Runtime, name: str, *, personal: bool):
    rng = random.Random(0)
    if personal:  # e-mail addresses: detected, and masked, at ingestion
        csv = "email,age,label\n" + "".join(f"user{i}@example.com,{rng.randint(18, 90)},{i % 2}\n" for i in range(200))
    else:
        csv = "age,spend,label\n" + "".join(f"{rng.randint(18, 90)},{rng.random() * 100:.2f},{i % 2}\n" for i in range(200))
    return create_dataset(rt, "user/alice", DatasetSpec(name, "csv", "default", AnonymisationSpec(), CsvDialect(), 8.0, 1e-5), [csv.encode()])


def test_personal_data_follows_the_dataset_the_lineage_names(registry, sqlite_runtime) -> None:
    alice = principal(sqlite_runtime, "user/alice")
    patients, plain = _dataset(sqlite_runtime, "patients", personal=True), _dataset(sqlite_runtime, "plain", personal=False)
    for name, lineage in [("by-id", {"dataset_id": patients.id}), ("by-name", {"dataset_id": "patients"}),
                          ("by-digest", {"dataset_digest": patients.blob_digest}), ("by-raw-digest", {"raw_digest": patients.raw_digest})]:
        v = registry.create_version(alice, VersionSpec(name, lineage=lineage, trained_on_personal_data=False), [weights()])
        assert v.trained_on_personal_data, name  # the uploader cannot clear what the platform knows
        with pytest.raises(PermissionDenied) as err:
            registry.request_release(alice, name, 1)
        assert set(err.value.policy_ids) == {"dp-guarantee-required", "personal-data-needs-established-facts"}
        (event,) = [e for e in audit_events(sqlite_runtime, "registry.CreateModelVersion") if e.resource == f"model/{name}/1"]
        details = json.loads(event.details)
        assert details["trained_on_personal_data"] is True and details["stated_personal_data"] is False
        # Not even an operator clears what the platform knows about the data it names.
        with pytest.raises(FailedPrecondition, match="names personal data"):
            registry.declare_personal_data(principal(sqlite_runtime, "user/admin"), name, 1, personal=False, reason="no")
    # Whatever an uploader says, a claimed version is presumed personal; an operator may
    # declare otherwise where its lineage names no personal data.
    for name, lineage in (("clean", {"dataset_id": plain.id}), ("elsewhere", {"dataset_id": "unknown"})):
        assert registry.create_version(alice, VersionSpec(name, lineage=lineage), [weights()]).trained_on_personal_data
        assert not registry.declare_personal_data(principal(sqlite_runtime, "user/admin"), name, 1, personal=False, reason="public data").trained_on_personal_data

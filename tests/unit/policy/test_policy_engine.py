"""Cedar policies: defaults decide as intended, and a bad policy names its file and line."""

from __future__ import annotations

import pathlib
import shutil

import pytest

from privet.governance.bootstrap import DEFAULT_POLICIES
from privet.governance.policy.engine import DEFAULT_DENY, PolicyEngine, PolicyError
from privet.governance.policy.holder import PolicyHolder


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine.load(DEFAULT_POLICIES)


CASES = [
    ("user/admin", "registry.RotateKeys", True, "admin-all"),
    ("user/alice", "ingestion.CreateDataset", True, "data-scientist-data"),
    ("user/alice", "registry.ReleaseModelVersion", False, DEFAULT_DENY),
    ("user/bob", "registry.ReleaseModelVersion", True, "release-manager-release"),
    ("user/bob", "ingestion.CreateDataset", False, DEFAULT_DENY),
    ("user/dana", "registry.ApproveRelease", True, "approver-approve"),
    ("user/dana", "registry.ReleaseModelVersion", False, DEFAULT_DENY),
    ("user/carol", "audit.ListEvents", True, "auditor-read"),
    ("user/carol", "registry.CreateModelVersion", False, "auditor-read-only"),
    ("user/app", "inference.ModelInfer", True, "application-inference"),
    ("user/app", "registry.GetModel", False, DEFAULT_DENY),
    ("service/training", "registry.CreateModelVersion", True, "training-service"),
    ("service/inference", "registry.DownloadWeights", True, "inference-service"),
    ("service/inference", "registry.ReleaseModelVersion", False, DEFAULT_DENY),
]


@pytest.mark.parametrize("who,action,allowed,policy", CASES)
def test_default_policies(engine: PolicyEngine, who: str, action: str, allowed: bool, policy: str) -> None:
    decision = engine.decide(engine.directory.principals[who], action, ("Api", action.split(".")[0]), {"rpc": action})
    assert decision.allowed is allowed
    assert policy in decision.policy_ids


def _copy(tmp_path: pathlib.Path) -> pathlib.Path:
    folder = tmp_path / "policies"
    shutil.copytree(DEFAULT_POLICIES, folder)
    return folder


def test_type_error_names_file_and_line(tmp_path: pathlib.Path) -> None:
    folder = _copy(tmp_path)
    (folder / "extra.cedar").write_text(
        '// a policy with a type error on line 4\n\n@id("typo")\npermit (principal, action, resource) when { principal.nmae == "x" };\n'
    )
    with pytest.raises(PolicyError, match=r"extra\.cedar:3: .*nmae"):
        PolicyEngine.load(folder)


def test_parse_error_names_file_and_line(tmp_path: pathlib.Path) -> None:
    folder = _copy(tmp_path)
    (folder / "broken.cedar").write_text('@id("ok")\npermit (principal, action, resource);\n\n@id("broken")\npermit (principal, action resource);\n')
    with pytest.raises(PolicyError, match=r"broken\.cedar:4: policy does not parse"):
        PolicyEngine.load(folder)


def test_policy_without_id_is_refused(tmp_path: pathlib.Path) -> None:
    folder = _copy(tmp_path)
    (folder / "anon.cedar").write_text("permit (principal, action, resource);\n")
    with pytest.raises(PolicyError, match=r"anon\.cedar:1: policy has no @id"):
        PolicyEngine.load(folder)


def test_reload_keeps_old_set_when_new_one_is_bad(tmp_path: pathlib.Path) -> None:
    folder = _copy(tmp_path)
    holder = PolicyHolder(folder)
    before = holder.engine
    (folder / "bad.cedar").write_text('@id("bad")\npermit (principal, action, resource) when { 1 };\n')
    assert not holder.reload_if_changed()
    assert holder.engine is before
    (folder / "bad.cedar").write_text('@id("app-read")\npermit (principal in Privet::Role::"application", action == Privet::Action::"registry.GetModel", resource);\n')
    assert holder.reload_if_changed()
    app = holder.engine.directory.principals["user/app"]
    assert holder.engine.decide(app, "registry.GetModel", ("Api", "registry"), {"rpc": "registry.GetModel"}).allowed

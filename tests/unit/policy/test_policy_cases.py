"""Policies as data (policies/tests): the default policies pass every shipped case, a policy
edit that changes a pinned decision fails its case by name, and `privet policies check`
says so with exit code 1."""

from __future__ import annotations

import json
import pathlib
import shutil

from typer.testing import CliRunner

from privet.governance.bootstrap import DEFAULT_POLICIES
from privet.governance.policy.checks import run_policy_tests


def test_the_default_policies_pass_every_case() -> None:
    results = run_policy_tests(DEFAULT_POLICIES)
    assert len(results) >= 20 and [r.name for r in results if not r.passed] == []
    assert {r.name.split("/")[0] for r in results} == {"ALLOW", "DENY"}


def test_an_edit_that_drops_an_invariant_fails_its_case(tmp_path: pathlib.Path) -> None:
    edited = tmp_path / "policies"
    shutil.copytree(DEFAULT_POLICIES, edited)
    release = edited / "release.cedar"
    text = release.read_text()
    start = text.index('@id("approval-not-by-requester")')
    end = text.index(";", start) + 1
    release.write_text(text[:start] + text[end:])
    failed = {r.name: r.message for r in run_policy_tests(edited) if not r.passed}
    assert list(failed) == ["DENY/approver-approves-own-request"] and "expected DENY, allowed" in failed["DENY/approver-approves-own-request"]


def test_the_cli_reports_failures_with_exit_code_1(tmp_path: pathlib.Path) -> None:
    from privet.services.cli import app

    edited = tmp_path / "policies"
    shutil.copytree(DEFAULT_POLICIES, edited)
    case = edited / "tests" / "ALLOW" / "owner-requests-release.json"
    data = json.loads(case.read_text())
    data["principal"], data["context"]["caller"] = "user/erin", "user/erin"  # not the owner
    case.write_text(json.dumps(data))
    runner = CliRunner()
    result = runner.invoke(app, ["--json", "policies", "check", "--dir", str(edited)])
    assert result.exit_code == 1
    out = {r["case"]: r for r in json.loads(result.output)}
    assert not out["ALLOW/owner-requests-release"]["passed"] and out["DENY/approver-approves-own-request"]["passed"]
    assert runner.invoke(app, ["policies", "check", "--dir", str(DEFAULT_POLICIES)]).exit_code == 0

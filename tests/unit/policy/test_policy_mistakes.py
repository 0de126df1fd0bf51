"""An operator's mistake in policies/ never silently weakens policy: a set that does not load is
refused with every problem named (file, line, @id), the last good set keeps serving, the
refusal is reported (metric, `privet status`), and the next good change still loads."""

from __future__ import annotations

import json
import pathlib
import re
import shutil

import pytest

from privet.governance.bootstrap import DEFAULT_POLICIES
from privet.governance.config import Home
from privet.governance.identity.principals import PrincipalsError, load_directory
from privet.governance.policy.engine import PolicyEngine, PolicyError
from privet.governance.policy.holder import PolicyHolder
from privet.services.common.metrics import ServerMetrics
from tests.conftest import use_any_ports

GOOD = (DEFAULT_POLICIES / "principals.yaml").read_text()


def _copy(tmp_path: pathlib.Path) -> pathlib.Path:
    folder = tmp_path / "policies"
    shutil.copytree(DEFAULT_POLICIES, folder)
    return folder


def _principals(folder: pathlib.Path, text: str) -> None:
    (folder / "principals.yaml").write_text(text)


def test_a_role_typo_is_refused_the_old_set_serves_and_the_next_change_loads(tmp_path: pathlib.Path) -> None:
    folder = _copy(tmp_path)
    holder = PolicyHolder(folder)
    before = holder.engine
    # The operator removes carol and, in the same edit, misspells bob's role.
    _principals(folder, GOOD.replace("  carol: {role: auditor}\n", "").replace("role: release-manager", "role: release-manger"))
    assert holder.reload_if_changed() is False  # refused, not raised: the watcher lives on
    assert holder.engine is before and "user/carol" in holder.engine.directory.principals
    assert holder.failing and holder.failures == 1
    problems = holder.refused.problems
    assert len(problems) == 1 and problems[0].startswith("principals.yaml:10: users.bob.role: unknown role 'release-manger'")
    # The fix loads: carol is gone, bob is back to release manager.
    _principals(folder, GOOD.replace("  carol: {role: auditor}\n", ""))
    assert holder.reload_if_changed() is True
    assert not holder.failing and holder.refused is None
    assert "user/carol" not in holder.engine.directory.principals
    assert holder.engine.directory.principals["user/bob"].role == "release-manager"


@pytest.mark.parametrize("text,expected", [
    ("roles: [admin, auditor\nusers: {}\n", r"principals\.yaml:2: not valid YAML"),
    ("- just\n- a list\n", r"principals\.yaml:1: roles: the file must be a mapping"),
    ("users:\n  admin: {role: admin}\n", r"principals\.yaml:1: roles: missing"),
])
def test_malformed_principals_are_refused_with_their_line(tmp_path: pathlib.Path, text: str, expected: str) -> None:
    folder = _copy(tmp_path)
    holder = PolicyHolder(folder)
    before = holder.engine
    _principals(folder, text)
    assert holder.reload_if_changed() is False
    assert holder.engine is before
    assert holder.refused is not None
    assert any(re.match(expected, p) for p in holder.refused.problems), holder.refused.problems


def test_every_principals_problem_is_listed_with_its_line(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "principals.yaml"
    path.write_text(
        "roles: [admin, service, Admin]\n"          # 1: reserved role, bad name
        "users:\n"
        "  ok: {role: admin}\n"
        "  bad: {role: admn}\n"                      # 4: unknown role
        "  typo: {rol: admin}\n"                     # 5: unknown key, missing role
        "  Upper: {role: admin}\n"                   # 6: bad name
        "  team: {role: admin, team: 'Risk'}\n"      # 7: bad team
        "services: [training, training]\n"           # 8: listed twice
        "service: [x]\n"                             # 9: unknown top-level key
    )
    with pytest.raises(PrincipalsError) as caught:
        load_directory(path)
    got = caught.value.problems
    assert [p.split(":")[1] for p in got] == ["1", "1", "4", "5", "5", "6", "7", "8", "9"], got
    for fragment in ("service: unknown key", "roles[1]: 'service' is reserved", "roles[2]: 'Admin' is not a valid name",
                     "users.bad.role: unknown role 'admn'", "users.typo.rol: unknown key", "users.typo.role: missing",
                     "users.Upper: 'Upper' is not a valid name", "users.team.team: 'Risk'", "services[1]: 'training' is listed twice"):
        assert any(fragment in p for p in got), (fragment, got)


def test_a_policy_naming_an_undeclared_role_is_refused_naming_its_id(tmp_path: pathlib.Path) -> None:
    folder = _copy(tmp_path)
    # A forbid on a misspelt role would otherwise never apply: an auditor could write.
    (folder / "extra.cedar").write_text(
        "// auditors never rotate keys\n"
        '@id("auditors-never-rotate")\n'
        'forbid (principal in Privet::Role::"auditr", action == Privet::Action::"registry.RotateKeys", resource)\n'
        'unless { principal in Privet::Role::"admin" || principal in [Privet::Role::"aprover"] };\n'
    )
    with pytest.raises(PolicyError) as caught:
        PolicyEngine.load(folder)
    declared = "(declared: admin, application, approver, auditor, data-scientist, release-manager, service)"
    assert caught.value.problems == tuple(
        f"extra.cedar:2: policy @id(\"auditors-never-rotate\") names role {role!r}, which principals.yaml does not declare {declared}"
        for role in ("aprover", "auditr")
    )


def test_every_problem_of_a_set_is_listed_at_once(tmp_path: pathlib.Path) -> None:
    folder = _copy(tmp_path)
    (folder / "a.cedar").write_text('@id("typo")\npermit (principal, action, resource) when { principal.nmae == "x" };\n')
    (folder / "b.cedar").write_text('@id("broken")\npermit (principal, action resource);\n\n@id("admin-all")\npermit (principal, action, resource);\n')
    _principals(folder, GOOD.replace("role: release-manager", "role: release-manger"))
    with pytest.raises(PolicyError) as caught:
        PolicyEngine.load(folder)
    problems = caught.value.problems
    assert len(problems) == 4, problems
    assert problems[0].startswith("principals.yaml:10: users.bob.role")
    assert problems[1].startswith('a.cedar:1: policy does not validate against the schema, @id("typo"): ') and "nmae" in problems[1]
    assert problems[2].startswith('b.cedar:1: policy does not parse, @id("broken"): ')
    assert problems[3] == 'b.cedar:4: duplicate @id("admin-all") (first at api.cedar:4): every policy needs its own id'
    # One line, all of them: what `privet serve` prints when it refuses to start.
    assert str(caught.value).startswith("4 problems: principals.yaml:10: ") and "\n" not in str(caught.value)


def test_an_unforeseen_error_refuses_the_set_and_is_not_raised(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _copy(tmp_path)
    holder = PolicyHolder(folder)
    before = holder.engine

    def explode(_folder: pathlib.Path) -> PolicyEngine:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(PolicyEngine, "load", staticmethod(explode))
    (folder / "api.cedar").write_text((folder / "api.cedar").read_text() + "\n// touched\n")
    assert holder.reload_if_changed() is False
    assert holder.engine is before and holder.failing
    assert "RuntimeError: disk on fire" in holder.refused.problems[0]


def test_a_removed_policy_folder_is_refused(tmp_path: pathlib.Path) -> None:
    folder = _copy(tmp_path)
    holder = PolicyHolder(folder)
    shutil.rmtree(folder)
    assert holder.reload_if_changed() is False and holder.failing


def test_the_metric_says_when_the_files_were_refused() -> None:
    metrics = ServerMetrics("registry")
    failing = [False]
    metrics.add_policy_load_gauge(lambda: failing[0])
    assert metrics.registry.get_sample_value("privet_policy_load_failing") == 0
    failing[0] = True
    assert metrics.registry.get_sample_value("privet_policy_load_failing") == 1


def _status(home: Home) -> tuple[int, str]:
    from typer.testing import CliRunner

    from privet.services.cli import app

    result = CliRunner().invoke(app, ["--home", str(home.root), "--json", "status"])
    return result.exit_code, result.stdout


def test_privet_status_reports_refused_policy_files(home: Home) -> None:
    use_any_ports(home)  # nothing listens there: only the policy line matters here
    _, out = _status(home)
    policies = [row for row in json.loads(out) if row["service"] == "policies"]
    assert policies and policies[0]["ok"] is True and policies[0]["status"].startswith("LOADS")
    _principals(home.policies, GOOD.replace("role: release-manager", "role: release-manger"))
    code, out = _status(home)
    assert code == 1
    [row] = [row for row in json.loads(out) if row["service"] == "policies"]
    assert row["ok"] is False and row["status"] == "REFUSED: 1 problem(s)"
    assert row["problems"][0].startswith("principals.yaml:10: users.bob.role: unknown role 'release-manger'")


def test_a_template_is_refused_rather_than_failing_at_decision_time(tmp_path: pathlib.Path) -> None:
    folder = _copy(tmp_path)
    (folder / "t.cedar").write_text('@id("t")\npermit (principal == ?principal, action, resource);\n')
    with pytest.raises(PolicyError, match=r't\.cedar:1: policy @id\("t"\) is a template'):
        PolicyEngine.load(folder)

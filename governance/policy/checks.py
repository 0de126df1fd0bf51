"""Policies as data, checked as data: request files whose folder is the expected decision.

    policies/tests/defaults.json      the attributes each resource type starts from
    policies/tests/ALLOW/<case>.json   requests the policies must allow
    policies/tests/DENY/<case>.json    requests they must deny (optionally by named policies)

A case is one Cedar request, as Privet makes it:

    {"principal": "user/dana", "action": "model.approve",
     "resource": {"type": "ModelVersion", "id": "v1", "attrs": {"requester": "user/dana"}},
     "context": {"caller": "user/dana"},
     "policies": ["approval-not-by-requester"]}          # DENY only, optional: exactly these decide

The resource's attributes are its type's defaults with the case's on top, so a case states
only what it is about. `privet policies check` runs them against an operator's edited
policies; the test suite runs them against the defaults. A policy edit that changes a
decision a case pins fails here, by name, before it reaches a service.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass
from typing import Any

from privet.governance.policy.engine import PolicyEngine

__all__ = ["CaseResult", "run_policy_tests"]

DECISIONS = ("ALLOW", "DENY")


@dataclass(frozen=True)
class CaseResult:
    name: str  # "DENY/approver-approves-own-request"
    passed: bool
    message: str  # what was decided, and by which policies


def _case(engine: PolicyEngine, path: pathlib.Path, expected: str, defaults: dict[str, Any]) -> CaseResult:
    name = f"{expected}/{path.stem}"
    try:
        case = json.loads(path.read_text())
        principal = engine.directory.principals[case["principal"]]
        resource = case["resource"]
        attrs = {**defaults.get(resource["type"], {}), **resource.get("attrs", {})}
        entity = {"uid": {"type": f"Privet::{resource['type']}", "id": resource["id"]}, "attrs": attrs, "parents": []}
        decision = engine.decide(principal, case["action"], (resource["type"], resource["id"]), case.get("context", {}), [entity])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return CaseResult(name, False, f"the case cannot be run: {exc!r}")
    said = f"{'allowed' if decision.allowed else 'denied'} by {', '.join(decision.policy_ids) or 'nothing'}"
    if decision.errors:
        return CaseResult(name, False, f"{said}, with evaluation errors: {'; '.join(decision.errors)}")
    if decision.allowed != (expected == "ALLOW"):
        return CaseResult(name, False, f"expected {expected}, {said}")
    pinned = case.get("policies")
    if pinned is not None and sorted(pinned) != sorted(decision.policy_ids):
        return CaseResult(name, False, f"{said}, expected by {', '.join(sorted(pinned))}")
    return CaseResult(name, True, said)


def run_policy_tests(folder: pathlib.Path) -> list[CaseResult]:
    """Load the policies in `folder` (PolicyError if they do not load) and run every case
    under `folder/tests`; no cases, no results."""
    engine = PolicyEngine.load(folder)
    tests = folder / "tests"
    defaults_path = tests / "defaults.json"
    defaults = json.loads(defaults_path.read_text()) if defaults_path.exists() else {}
    results = []
    for expected in DECISIONS:
        for path in sorted((tests / expected).glob("*.json")):
            results.append(_case(engine, path, expected, defaults))
    return results

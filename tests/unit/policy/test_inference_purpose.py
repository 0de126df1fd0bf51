"""The purposes a prediction may serve are an invariant no role bypasses (issue 19, item 11):
admin-all used to cover `inference.Predict` for any purpose."""

from __future__ import annotations

import pytest

from privet.governance.bootstrap import DEFAULT_POLICIES
from privet.governance.policy.engine import PolicyEngine


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine.load(DEFAULT_POLICIES)


def _predict(engine: PolicyEngine, who: str, purpose: str, stage: str = "RELEASED"):
    model = {"uid": {"type": "Privet::ServedModel", "id": "m:1"}, "attrs": {"name": "m", "version": 1, "stage": stage, "epsilon_milli": 1000, "owner": "user/alice"}, "parents": []}
    principal = engine.directory.principals[who]
    return engine.decide(principal, "inference.Predict", ("ServedModel", "m:1"), {"purpose": purpose, "quota_used": 0, "quota_limit": 10}, [model])


@pytest.mark.parametrize("who", ["user/admin", "user/app"])
def test_no_role_predicts_for_an_unlisted_purpose(engine: PolicyEngine, who: str) -> None:
    decision = _predict(engine, who, "marketing")
    assert not decision.allowed and decision.policy_ids == ("inference-approved-purpose",)


def test_a_listed_purpose_is_allowed_for_applications_and_operators(engine: PolicyEngine) -> None:
    assert _predict(engine, "user/app", "churn-prediction").allowed
    assert _predict(engine, "user/admin", "demo").allowed
    assert not _predict(engine, "user/admin", "demo", stage="REGISTERED").allowed  # released only, whoever asks

"""The release gate's integers, as Cedar reads them: epsilon and delta are rounded up (the
served model's as the release gate's), and a huge epsilon saturates at Cedar's largest long."""

from __future__ import annotations

import pytest

from privet.governance.registry import ReleaseFacts, Stage
from privet.governance.registry.gates import served_model_entity

CEDAR_LONG_MAX = 2**63 - 1


def _facts(epsilon: float | None, delta: float | None) -> ReleaseFacts:
    return ReleaseFacts(version_id="v", model="m", version=1, stage=Stage.REGISTERED, owner="user/alice", trainer="user/alice",
                        requester="", approvers=(), trained_on_personal_data=True, has_guarantee=True, epsilon=epsilon, delta=delta)


@pytest.mark.parametrize("epsilon", [9.3e15, 1e16, 1e300, float("inf"), float("nan")])
def test_a_huge_epsilon_saturates_at_cedars_largest_integer(epsilon: float) -> None:
    attrs = _facts(epsilon, 1e-6).entity()["attrs"]
    assert attrs["epsilon_milli"] == CEDAR_LONG_MAX  # still above any limit, and a valid Cedar long
    assert attrs["delta_ppb"] == 1000


def test_ordinary_values_are_still_exact_and_rounded_up() -> None:
    attrs = _facts(8.0001, 1.00000001e-5).entity()["attrs"]
    assert (attrs["epsilon_milli"], attrs["delta_ppb"]) == (8001, 10001)
    assert _facts(9.2e15, 1e-6).entity()["attrs"]["epsilon_milli"] == 9_200_000_000_000_000_000  # just inside the range


def test_a_served_models_epsilon_is_rounded_up_as_the_gates_round_it() -> None:
    """The inference servicer rounded ε down (int(ε·1000)): 8.0004 read as 8000, within a
    policy's `epsilon_milli <= 8000` that the release gate (rounding up) would refuse."""
    assert served_model_entity("m", 1, "RELEASED", 8.0004, "user/alice")["attrs"]["epsilon_milli"] == 8001
    assert served_model_entity("m", 1, "RELEASED", None, "user/alice")["attrs"]["epsilon_milli"] == 0

"""The data's δ is spent for good by DP selections: jobs are refused before it runs out, and
the ledger never states less than the true composition when it does run low."""

from __future__ import annotations

import pytest

from privet.governance.errors import ResourceExhausted
from privet.governance.privacy.accounting import Mechanism
from privet.governance.privacy.composition import composed_epsilon
from privet.governance.privacy.ledger import BudgetLedger
from privet.governance.privacy.releases import Release
from privet.governance.runtime import Runtime

SIGMA_EPS1 = 1.5234375  # ε ≤ 1 over 1000 steps at q = 0.01, δ 1e-5 (test_composition)
RUN = Mechanism(SIGMA_EPS1, 0.01, 1000, 1e-5)


def test_selections_are_refused_before_they_exhaust_the_datas_delta(runtime: Runtime) -> None:
    ledger = BudgetLedger(runtime.audit)
    runtime.write(lambda s: ledger.open_budget(s, "ds", 10.0, 1e-5, "user/alice"))
    selection = Release("classes:y", "laplace-partition-selection", 0.05, 1e-6)
    settled = 0
    with pytest.raises(ResourceExhausted) as caught:
        for i in range(10):
            runtime.write(lambda s, i=i: ledger.reserve(s, "ds", f"j{i}", 1.2, 1e-5, "user/alice", release_delta=1e-6))
            runtime.write(lambda s, i=i: ledger.settle(s, "ds", f"j{i}", 1.2, RUN, "service/training", releases=(selection,), within_reservation=True))
            settled += 1
    assert "δ exhausted" in caught.value.message and settled == 5  # half the δ stays for DP-SGD
    with runtime.read() as s:
        assert ledger.release_delta_spent(s, "ds") == pytest.approx(5e-6)
        budget = ledger.budget(s, "ds")
    # Never below the true composition of everything charged.
    truth = composed_epsilon(mechanisms=[RUN] * 5, releases=[selection] * 5, delta=1e-5)
    assert budget.epsilon_spent >= truth - 1e-6 and budget.epsilon_reserved == 0


def test_a_charge_beyond_its_reservation_through_composition_is_charged_in_full(runtime: Runtime) -> None:
    """When the releases' δ leave the Gaussians little room, one more job can raise the
    composed ε by more than it reserved: the ledger charges the real increase (it used to
    cap it at the reservation and state less than the truth)."""
    ledger = BudgetLedger(runtime.audit)
    runtime.write(lambda s: ledger.open_budget(s, "ds", 10.0, 1e-5, "user/alice"))
    greedy = Release("classes:y", "laplace-partition-selection", 0.05, 9.99e-6)
    runtime.write(lambda s: ledger.reserve(s, "ds", "a", 1.0, 1e-5, "user/alice"))
    runtime.write(lambda s: ledger.settle(s, "ds", "a", 1.0, None, "service/training", releases=(greedy,), within_reservation=True))
    runtime.write(lambda s: ledger.reserve(s, "ds", "b", 1.0, 1e-5, "user/alice"))
    charged = runtime.write(lambda s: ledger.settle(s, "ds", "b", 1.0, RUN, "service/training", within_reservation=True))
    with runtime.read() as s:
        budget = ledger.budget(s, "ds")
    truth = composed_epsilon(mechanisms=[RUN], releases=[greedy], delta=1e-5)
    assert truth > 1.3 and charged > 1.0  # more than the job reserved: the δ left was 1e-8
    assert budget.epsilon_spent >= truth - 1e-6

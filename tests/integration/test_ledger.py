"""The privacy budget ledger on SQLite and PostgreSQL: concurrent submits never overspend."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from privet.governance.errors import ResourceExhausted
from privet.governance.privacy.accounting import Mechanism, conservative_epsilon
from privet.governance.privacy.composition import composed_epsilon
from privet.governance.privacy.ledger import BudgetLedger, to_micro
from privet.governance.runtime import Runtime
from privet.governance.store.privacy_tables import LedgerEntry
from privet.governance.store.tables import AuditEvent


def _open(rt: Runtime, dataset_id: str, epsilon: float) -> BudgetLedger:
    ledger = BudgetLedger(rt.audit)
    rt.write(lambda s: ledger.open_budget(s, dataset_id, epsilon, 1e-5, "user/alice"))
    return ledger


def test_32_concurrent_reservations_never_exceed_the_budget(runtime: Runtime) -> None:
    _open(runtime, "ds", 10.0)
    replicas = [runtime] + [Runtime.open(runtime.home) for _ in range(3)]  # several writers at the database
    accepted, refused = [], []
    lock = threading.Lock()
    barrier = threading.Barrier(32)

    def submit(i: int) -> None:
        rt = replicas[i % len(replicas)]
        ledger = BudgetLedger(rt.audit)
        barrier.wait()
        try:
            rt.write(lambda s: ledger.reserve(s, "ds", f"job-{i}", 3.0, 1e-5, "user/alice"))
            with lock:
                accepted.append(i)
        except ResourceExhausted as exc:
            assert "left" in exc.message
            with lock:
                refused.append(i)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for rt in replicas[1:]:
        rt.close()
    assert len(accepted) == 3 and len(refused) == 29
    with runtime.read() as s:
        budget = BudgetLedger(runtime.audit).budget(s, "ds")
        reserve_events = s.execute(select(AuditEvent).where(AuditEvent.action == "privacy.reserve")).scalars().all()
    assert budget.epsilon_reserved == pytest.approx(9.0) and budget.epsilon_remaining == pytest.approx(1.0)
    assert len(reserve_events) == 3


def test_settle_records_the_conservative_accountant_charges_the_lesser_bound_and_releases_the_rest(runtime: Runtime) -> None:
    ledger = _open(runtime, "ds2", 8.0)
    runtime.write(lambda s: ledger.reserve(s, "ds2", "j1", 3.0, 1e-5, "user/alice"))
    mechanism = Mechanism(noise_multiplier=1.1, sample_rate=0.01, steps=200, delta=1e-5)
    charged = runtime.write(lambda s: ledger.settle(s, "ds2", "j1", 3.0, mechanism, "service/training"))
    own, accountant = conservative_epsilon(mechanism)
    # The budget's spend is the lesser of two valid bounds at its δ: the PLD and the job's own
    # conservative figure (one run at the budget's δ, so the plain sum holds there too).
    expected = min(to_micro(composed_epsilon(mechanisms=[mechanism], delta=1e-5)), to_micro(own)) / 1e6
    assert charged == pytest.approx(expected, abs=1e-6) and 0 < charged <= own < 3.0
    runtime.write(lambda s: ledger.reserve(s, "ds2", "j2", 2.0, 1e-5, "user/alice"))
    assert runtime.write(lambda s: ledger.settle(s, "ds2", "j2", 2.0, None, "service/training")) == 0.0  # never took a step
    with runtime.read() as s:
        budget = ledger.budget(s, "ds2")
        history = ledger.history(s, "ds2")
    assert budget.epsilon_spent == pytest.approx(expected, abs=1e-6) and budget.epsilon_reserved == 0
    charge = next(e for e in history if e.kind == "charge")
    assert (charge.noise_multiplier, charge.sample_rate, charge.steps, charge.accountant, charge.mechanism) == (1.1, 0.01, 200, accountant, "subsampled-gaussian")
    assert charge.epsilon_micro == to_micro(own)  # the entry keeps the run's own figure, to recompute from
    assert [e.kind for e in history] == ["open", "reserve", "charge", "release", "reserve", "release"]
    assert isinstance(history[0], LedgerEntry)


def test_a_reservation_larger_than_the_budget_is_refused(runtime: Runtime) -> None:
    ledger = _open(runtime, "ds3", 1.0)
    with pytest.raises(ResourceExhausted, match="1 of 1 left"):
        runtime.write(lambda s: ledger.reserve(s, "ds3", "j", 1.5, 1e-5, "user/alice"))

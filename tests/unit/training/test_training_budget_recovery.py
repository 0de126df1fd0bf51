"""A job's charge never exceeds its reservation: leases stop at the planned steps, a restart
always ends an orphan (and frees its reservation), and ε inputs the ledger cannot hold are
refused as INVALID_ARGUMENT."""

from __future__ import annotations

import functools
import json
import math
import random

import grpc
import pytest
from sqlalchemy import update

from privet.governance.datasets.catalog import DatasetSpec, create_dataset, dataset_budget
from privet.governance.datasets.formats import CsvDialect
from privet.governance.datasets.pipeline import AnonymisationSpec
from privet.governance.errors import FailedPrecondition, InvalidArgument
from privet.governance.privacy.accounting import Mechanism, conservative_epsilon
from privet.governance.privacy.composition import composed_epsilon
from privet.governance.privacy.ledger import MAX_EPSILON, BudgetLedger, to_micro
from privet.governance.runtime import Runtime
from privet.governance.store.privacy_tables import PrivacyBudgetRow
from privet.governance.training import jobs
from privet.governance.training.jobs import JobSpec, claim_next_job, get_job, planned_steps, record_progress, recover_orphans, submit_job
from privet.services.common.errors import status_for
from privet.services.training import scheduler
from privet.services.training.scheduler import next_lease

ROWS = 1000
LEASE = 25  # the scheduler's default lease, twice the 12 steps these jobs plan


# The expected (σ, q) and conservative ε are pure functions of their arguments, and every test
# here plans the same job: calibrating σ takes seconds (accountants searched), so the tests
# compute each expectation once and share it. What the code under test computes is not cached.
@functools.cache
def planned_mechanism(*, epsilon: float, delta: float, n_train: int, batch_size: int, epochs: int) -> tuple[float, float]:
    return scheduler.planned_mechanism(epsilon=epsilon, delta=delta, n_train=n_train, batch_size=batch_size, epochs=epochs)


@functools.cache
def _conservative_epsilon(mechanism: Mechanism) -> float:
    return conservative_epsilon(mechanism)[0]


def _dataset(rt: Runtime, epsilon_budget: float):  # type: ignore[no-untyped-def]
    rng = random.Random(0)
    csv = "age,spend,label\n" + "".join(f"{rng.randint(18, 90)},{rng.random() * 100:.2f},{rng.randint(0, 1)}\n" for _ in range(ROWS))
    return create_dataset(rt, "user/alice", DatasetSpec("custs", "csv", "default", AnonymisationSpec(), CsvDialect(), epsilon_budget, 1e-5), [csv.encode()])


def _orphan(rt: Runtime, steps_allowed: int | None = None) -> tuple[str, Mechanism]:
    """A job that reserved ε 3, was claimed, had its lease persisted, and whose service died
    before the worker took a step. Returns its id and its planned mechanism."""
    job = submit_job(rt, "user/alice", JobSpec(dataset="custs", target="label", epochs=3, batch_size=256, target_epsilon=3.0, delta=1e-5))
    spec = json.loads(claim_next_job(rt, "otherhost:1").spec_json)
    sigma, q = planned_mechanism(epsilon=spec["target_epsilon"], delta=spec["delta"], n_train=int(ROWS * 0.8), batch_size=spec["batch_size"], epochs=spec["epochs"])
    planned = planned_steps(spec["epochs"], q)
    lease = next_lease(0, 0, LEASE, planned) if steps_allowed is None else steps_allowed
    record_progress(rt, job.id, {}, steps_allowed=lease, noise_multiplier=sigma, sample_rate=q)
    return job.id, Mechanism(sigma, q, planned, spec["delta"])


def _assert_settled_within(rt: Runtime, dataset_id: str, job_id: str, planned: Mechanism) -> None:
    job = get_job(rt, job_id)
    budget = dataset_budget(rt, dataset_id)
    assert job.state == "FAILED"
    assert 0 < job.epsilon_charged <= job.epsilon_reserved
    # The first charge on the budget: the lesser of the PLD composition and the run's own
    # conservative figure (capped at the reservation, which the caller vouches for).
    own = min(_conservative_epsilon(planned), job.epsilon_reserved)
    assert job.epsilon_charged == pytest.approx(min(to_micro(composed_epsilon(mechanisms=[planned], delta=budget.delta)), to_micro(own)) / 1e6, abs=1e-6)
    assert budget.epsilon_reserved == 0 and budget.epsilon_spent == job.epsilon_charged
    assert budget.epsilon_remaining >= 0


# -- leases ---------------------------------------------------------------------------


def test_a_lease_never_goes_past_the_planned_steps() -> None:
    assert next_lease(0, 0, LEASE, 12) == 12
    assert next_lease(0, 0, LEASE, 100) == 25
    assert next_lease(25, 14, LEASE, 100) == 39  # over half used: extended from the steps taken
    assert next_lease(25, 13, LEASE, 100) == 25  # half still left: unchanged
    assert next_lease(90, 80, LEASE, 100) == 100
    assert next_lease(100, 99, LEASE, 100) == 100  # at the horizon: never extended


def test_the_planned_steps_spend_at_most_the_reservation() -> None:
    spec = {"epochs": 3, "batch_size": 256, "target_epsilon": 3.0, "delta": 1e-5}
    sigma, q = planned_mechanism(epsilon=spec["target_epsilon"], delta=spec["delta"], n_train=800, batch_size=spec["batch_size"], epochs=spec["epochs"])
    planned = planned_steps(spec["epochs"], q)
    assert planned == 12
    assert _conservative_epsilon(Mechanism(sigma, q, planned, spec["delta"])) <= spec["target_epsilon"]


# -- recovery -------------------------------------------------------------------------


@pytest.mark.parametrize("epsilon_budget", [3.0, 8.0], ids=["whole-budget-reserved", "budget-to-spare"])
def test_an_orphan_is_charged_at_most_its_reservation(sqlite_runtime: Runtime, epsilon_budget: float) -> None:
    ds = _dataset(sqlite_runtime, epsilon_budget)
    job_id, planned = _orphan(sqlite_runtime)
    assert get_job(sqlite_runtime, job_id).steps_allowed == planned.steps
    assert [j.id for j in recover_orphans(sqlite_runtime, stale_after_s=0)] == [job_id]
    _assert_settled_within(sqlite_runtime, ds.id, job_id, planned)
    assert recover_orphans(sqlite_runtime, stale_after_s=0) == []


def test_an_oversized_lease_from_an_older_service_is_capped_at_the_planned_steps(runtime: Runtime) -> None:
    # Budget exactly the reservation: charging all 25 steps could never settle, and the job
    # stayed RUNNING with its ε 3 held across every restart.
    ds = _dataset(runtime, 3.0)
    job_id, planned = _orphan(runtime, steps_allowed=LEASE)
    assert [j.id for j in recover_orphans(runtime, stale_after_s=0)] == [job_id]
    _assert_settled_within(runtime, ds.id, job_id, planned)


def test_an_orphan_that_never_got_a_lease_is_released_in_full(sqlite_runtime: Runtime) -> None:
    ds = _dataset(sqlite_runtime, 3.0)
    job = submit_job(sqlite_runtime, "user/alice", JobSpec(dataset="custs", target="label", epochs=3, batch_size=256, target_epsilon=3.0, delta=1e-5))
    claim_next_job(sqlite_runtime, "otherhost:1")
    recover_orphans(sqlite_runtime, stale_after_s=0)
    assert get_job(sqlite_runtime, job.id).state == "FAILED"
    assert dataset_budget(sqlite_runtime, ds.id).epsilon_remaining == 3.0


def test_a_charge_calibrated_to_the_reservation_never_exceeds_it(sqlite_runtime: Runtime) -> None:
    ledger = BudgetLedger(sqlite_runtime.audit)
    sqlite_runtime.write(lambda s: ledger.open_budget(s, "ds", 3.0, 1e-5, "user/alice"))
    sqlite_runtime.write(lambda s: ledger.reserve(s, "ds", "j", 3.0, 1e-5, "user/alice"))
    noisier_than_reserved = Mechanism(0.5, 0.25, 12, 1e-5)  # ε far above 3
    charged = sqlite_runtime.write(lambda s: ledger.settle(s, "ds", "j", 3.0, noisier_than_reserved, "service/training", within_reservation=True))
    with sqlite_runtime.read() as s:
        budget = ledger.budget(s, "ds")
    assert charged == 3.0 and budget.epsilon_spent == 3.0 and budget.epsilon_remaining == 0


def test_recovery_does_not_mistake_its_own_failure_for_another_replica(sqlite_runtime: Runtime) -> None:
    ds = _dataset(sqlite_runtime, 3.0)
    job_id, _ = _orphan(sqlite_runtime)
    # A ledger that cannot settle the job (its reservation is gone): loud, not skipped.
    sqlite_runtime.write(lambda s: s.execute(update(PrivacyBudgetRow).where(PrivacyBudgetRow.dataset_id == ds.id).values(reserved_micro=0)))
    with pytest.raises(FailedPrecondition):
        recover_orphans(sqlite_runtime, stale_after_s=0)
    assert get_job(sqlite_runtime, job_id).state == "RUNNING"


def test_recovery_skips_a_job_another_replica_ended_first(sqlite_runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = _dataset(sqlite_runtime, 3.0)
    job_id, planned = _orphan(sqlite_runtime)
    finish = jobs.finish_job

    def raced(runtime, job_id, *args, **kw):  # type: ignore[no-untyped-def]
        finish(runtime, job_id, *args, **kw)  # the other replica, between our read and our end
        return finish(runtime, job_id, *args, **kw)

    monkeypatch.setattr(jobs, "finish_job", raced)
    assert recover_orphans(sqlite_runtime, stale_after_s=0) == []
    _assert_settled_within(sqlite_runtime, ds.id, job_id, planned)


# -- ε the ledger cannot hold ---------------------------------------------------------


@pytest.mark.parametrize("epsilon", [math.inf, math.nan, 1e30, float(MAX_EPSILON) * 2, 0.0, -1.0])
def test_a_target_epsilon_the_ledger_cannot_hold_is_an_invalid_argument(sqlite_runtime: Runtime, epsilon: float) -> None:
    ds = _dataset(sqlite_runtime, 3.0)
    with pytest.raises(InvalidArgument) as caught:
        submit_job(sqlite_runtime, "user/alice", JobSpec(dataset="custs", target="label", target_epsilon=epsilon, delta=1e-5))
    assert caught.value.field == "target_epsilon"
    assert status_for(caught.value).code == grpc.StatusCode.INVALID_ARGUMENT
    assert dataset_budget(sqlite_runtime, ds.id).epsilon_remaining == 3.0


@pytest.mark.parametrize("field", ["learning_rate", "max_grad_norm"])
@pytest.mark.parametrize("value", [math.inf, math.nan, 0.0])
def test_optimiser_settings_must_be_finite_and_positive(sqlite_runtime: Runtime, field: str, value: float) -> None:
    _dataset(sqlite_runtime, 3.0)
    with pytest.raises(InvalidArgument) as caught:
        submit_job(sqlite_runtime, "user/alice", JobSpec(dataset="custs", target="label", delta=1e-5, **{field: value}))
    assert caught.value.field == field


def test_the_largest_epsilon_fits_the_ledger_columns() -> None:
    assert to_micro(float(MAX_EPSILON)) <= 2**63 - 1


@pytest.mark.parametrize("epsilon", [math.inf, 1e30])
def test_the_ledger_refuses_what_it_cannot_hold(sqlite_runtime: Runtime, epsilon: float) -> None:
    ledger = BudgetLedger(sqlite_runtime.audit)
    sqlite_runtime.write(lambda s: ledger.open_budget(s, "ds", 3.0, 1e-5, "user/alice"))
    with pytest.raises(InvalidArgument):
        sqlite_runtime.write(lambda s: ledger.open_budget(s, "ds-big", epsilon, 1e-5, "user/alice"))
    with pytest.raises(InvalidArgument):
        sqlite_runtime.write(lambda s: ledger.reserve(s, "ds", "j", epsilon, 1e-5, "user/alice"))
    with sqlite_runtime.read() as s:
        assert ledger.budget(s, "ds").epsilon_remaining == 3.0


def test_a_worker_whose_parent_is_gone_stops_waiting_for_a_lease() -> None:
    import multiprocessing as mp
    import subprocess
    import sys

    from privet.services.training.worker import WorkerHandles, wait_for_lease

    handles = WorkerHandles(mp.get_context("spawn"))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert wait_for_lease(handles, gone.pid) is False  # no lease, and the parent is not ours: stop
    handles.allowed.value = 1
    assert wait_for_lease(handles, gone.pid) is True  # a lease already granted is still taken
    handles.allowed.value = 0
    handles.cancel.set()
    assert wait_for_lease(handles, __import__("os").getppid()) is False


def test_an_orphan_is_charged_the_releases_its_preparation_recorded(sqlite_runtime: Runtime) -> None:
    """The DP statistics a job released before its service died are charged at recovery,
    beside its leased steps (they are recorded before the worker starts)."""
    from privet.governance.privacy.releases import Release

    ds = _dataset(sqlite_runtime, 8.0)
    job_id, planned = _orphan(sqlite_runtime)
    made = (Release("domain:plan", "laplace-partition-selection", 0.1, 1e-7), Release("scale:age", "exponential-quantile", 0.2))
    jobs.record_releases(sqlite_runtime, job_id, made)
    recover_orphans(sqlite_runtime, stale_after_s=0)
    with sqlite_runtime.read() as s:
        entries = [e for e in BudgetLedger(sqlite_runtime.audit).history(s, ds.id) if e.job_id == job_id and e.kind == "charge"]
    assert len(entries) == 3  # the leased run and both releases
    assert get_job(sqlite_runtime, job_id).epsilon_charged > 0


def test_a_worker_failure_that_may_depend_on_the_data_is_charged_its_whole_reservation(sqlite_runtime: Runtime, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A refusal of the tensors themselves (non-finite features) tells something about the
    rows: it is charged the whole reservation and publishes no detail (the red team read
    "features contain NaN" as an exact membership answer for 0.0002 ε)."""
    from privet.services.training.scheduler import Scheduler, _Spent

    ds = _dataset(sqlite_runtime, 8.0)
    job = submit_job(sqlite_runtime, "user/alice", JobSpec(dataset="custs", target="label", epochs=3, batch_size=256, target_epsilon=3.0, delta=1e-5))
    claimed = claim_next_job(sqlite_runtime, "here:1")
    (tmp_path / "result.json").write_text(json.dumps({"ok": False, "error": "features contain NaN or infinity", "field": "train", "guarantee": None, "data_dependent": True}))
    Scheduler(sqlite_runtime)._conclude(claimed, json.loads(claimed.spec_json), None, _Spent(), tmp_path, 0)  # type: ignore[arg-type]
    final = get_job(sqlite_runtime, job.id)
    assert final.state == "FAILED" and "NaN" not in final.reason and "whole reservation" in final.reason
    assert dataset_budget(sqlite_runtime, ds.id).epsilon_spent == pytest.approx(3.0, abs=1e-4)


def test_a_refusal_of_the_configuration_is_charged_only_its_releases(sqlite_runtime: Runtime, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from privet.governance.privacy.releases import Release
    from privet.services.training.scheduler import Scheduler, _Spent

    ds = _dataset(sqlite_runtime, 8.0)
    job = submit_job(sqlite_runtime, "user/alice", JobSpec(dataset="custs", target="label", epochs=3, batch_size=256, target_epsilon=3.0, delta=1e-5))
    claimed = claim_next_job(sqlite_runtime, "here:1")
    (tmp_path / "result.json").write_text(json.dumps({"ok": False, "error": "too few rows (817) for ε = 2.6", "field": "target_epsilon", "guarantee": None, "data_dependent": False}))
    spent = _Spent(releases=[Release("rows", "laplace-count", 0.06)])
    Scheduler(sqlite_runtime)._conclude(claimed, json.loads(claimed.spec_json), None, spent, tmp_path, 0)  # type: ignore[arg-type]
    final = get_job(sqlite_runtime, job.id)
    assert final.state == "FAILED" and "too few rows (817)" in final.reason
    assert dataset_budget(sqlite_runtime, ds.id).epsilon_spent == pytest.approx(0.06, abs=1e-4)

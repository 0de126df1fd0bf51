"""Budgets belong to the data and the ledger composes, on SQLite and PostgreSQL: same bytes,
one budget; deletion never resets it; the operator's cap bounds it; eight ε = 1 runs cost
about 2.75, not 8; and release gates see the data's cumulative spend."""

from __future__ import annotations

import json
import random
import threading

import grpc
import pytest
from sqlalchemy import select

from privet.governance.datasets.catalog import DatasetSpec, create_dataset, dataset_budget, dataset_ledger, delete_dataset
from privet.governance.datasets.formats import CsvDialect
from privet.governance.datasets.pipeline import AnonymisationSpec
from privet.governance.errors import FailedPrecondition, InvalidArgument, PermissionDenied, ResourceExhausted
from privet.governance.privacy.accounting import Mechanism, conservative_epsilon
from privet.governance.privacy.composition import composed_epsilon
from privet.governance.privacy.ledger import BudgetLedger, to_micro
from privet.governance.privacy.releases import Release
from privet.governance.registry import ModelRegistry, ReleaseFacts, Stage, VersionSpec
from privet.governance.registry.gates import DATASET_SPEND_POLICY
from privet.governance.runtime import Runtime
from privet.governance.store.tables import AuditEvent
from privet.services.common.errors import status_for
from tests.conftest import make_home
from tests.established import establish_version

DELTA = 1e-5
RUN = Mechanism(1.5234375, 0.01, 1000, DELTA)  # ε ≤ 1 by every registered accountant


def _csv(seed: int = 0) -> bytes:
    rng = random.Random(seed)
    return ("age,spend,label\n" + "".join(f"{rng.randint(18, 90)},{rng.random() * 100:.2f},{rng.randint(0, 1)}\n" for _ in range(300))).encode()


def _ingest(rt: Runtime, name: str, data: bytes, epsilon: float = 8.0, delta: float = DELTA):
    return create_dataset(rt, "user/alice", DatasetSpec(name, "csv", "default", AnonymisationSpec(), CsvDialect(), epsilon, delta), [data])


def _charge(rt: Runtime, dataset_id: str, job: str, epsilon: float, mechanism: Mechanism | None, releases=()) -> float:
    ledger = BudgetLedger(rt.audit)
    rt.write(lambda s: ledger.reserve(s, dataset_id, job, epsilon, DELTA, "user/alice"))
    return rt.write(lambda s: ledger.settle(s, dataset_id, job, epsilon, mechanism, "service/training", releases=releases))


# -- composition --------------------------------------------------------------------------

def test_eight_epsilon_one_runs_leave_about_three_spent_not_eight(runtime: Runtime) -> None:
    ds = _ingest(runtime, "custs", _csv(), epsilon=10.0)
    charges = [_charge(runtime, ds.id, f"j{i}", 1.0, RUN) for i in range(8)]
    budget = dataset_budget(runtime, ds.id)
    assert 2.7 < budget.epsilon_spent < 3.5 and budget.epsilon_reserved == 0  # linear summing charged 8
    assert budget.epsilon_spent == pytest.approx(sum(charges), abs=1e-5)  # each job is charged its increase
    assert charges[0] > charges[1] > charges[-1] > 0  # the marginal cost of one more run falls
    entries = [e for e in dataset_ledger(runtime, ds.id) if e.kind == "charge"]
    assert len(entries) == 8 and all(e.epsilon_micro == to_micro(conservative_epsilon(RUN)[0]) for e in entries)
    # Anyone can recompute the spend from the entries.
    recomputed = composed_epsilon(mechanisms=[Mechanism(e.noise_multiplier, e.sample_rate, e.steps, e.delta) for e in entries], delta=DELTA)
    assert budget.epsilon_spent == pytest.approx(recomputed, abs=1e-5)
    # Freed by composition, the budget takes more work: a ninth reservation of 6 fits in 10.
    assert _charge(runtime, ds.id, "j9", 6.0, None) == 0.0


def test_a_job_charges_its_run_and_each_release_as_entries_audited_together(runtime: Runtime) -> None:
    ds = _ingest(runtime, "custs", _csv())
    releases = (Release("scale:age", "laplace", 0.1), Release("evaluation", "laplace", 0.2))
    charged = _charge(runtime, ds.id, "j1", 2.0, RUN, releases)
    own = conservative_epsilon(RUN)[0] + 0.3
    assert composed_epsilon(mechanisms=[RUN], delta=DELTA) < charged <= own + 1e-6
    entries = [e for e in dataset_ledger(runtime, ds.id) if e.kind == "charge"]
    assert [(e.mechanism, e.purpose) for e in entries] == [("subsampled-gaussian", ""), ("laplace", "scale:age"), ("laplace", "evaluation")]
    assert [e.epsilon_micro for e in entries[1:]] == [to_micro(0.1), to_micro(0.2)]
    with runtime.read() as s:
        audited = s.execute(select(AuditEvent).where(AuditEvent.action == "privacy.charge")).scalars().all()
    assert len(audited) == 3 and all(float(json.loads(a.details)["job_epsilon_charged"]) == pytest.approx(charged) for a in audited)


def test_within_reservation_a_job_never_charges_more_than_it_reserved(runtime: Runtime) -> None:
    ds = _ingest(runtime, "custs", _csv())
    ledger = BudgetLedger(runtime.audit)
    runtime.write(lambda s: ledger.reserve(s, ds.id, "j", 1.3, DELTA, "user/alice"))
    # The run (ε ≤ 1 by every accountant) and its release fit the reservation.
    charged = runtime.write(lambda s: ledger.settle(s, ds.id, "j", 1.3, RUN, "service/training", releases=[Release("evaluation", "laplace", 0.3)], within_reservation=True))
    assert charged <= 1.3
    assert dataset_budget(runtime, ds.id).epsilon_spent <= 1.3


def test_within_reservation_caps_only_numerical_slack(runtime: Runtime) -> None:
    """A vouch the composition contradicts by more than numerical slack is not believed:
    the real increase is charged (capping it stated less than the data had spent)."""
    ds = _ingest(runtime, "custs", _csv())
    ledger = BudgetLedger(runtime.audit)
    runtime.write(lambda s: ledger.reserve(s, ds.id, "j", 0.5, DELTA, "user/alice"))
    charged = runtime.write(lambda s: ledger.settle(s, ds.id, "j", 0.5, RUN, "service/training", releases=[Release("evaluation", "laplace", 0.3)], within_reservation=True))
    assert charged > 0.5
    assert dataset_budget(runtime, ds.id).epsilon_spent == pytest.approx(charged)


def test_a_release_whose_delta_exceeds_the_budgets_is_refused(runtime: Runtime) -> None:
    ds = _ingest(runtime, "custs", _csv())
    with pytest.raises(FailedPrecondition):
        _charge(runtime, ds.id, "j", 1.0, None, [Release("domain:plan", "laplace-partition-selection", 0.1, 2 * DELTA)])


def test_concurrent_settles_on_one_budget_compose_every_charge(runtime: Runtime) -> None:
    ds = _ingest(runtime, "custs", _csv(), epsilon=10.0)
    ledger = BudgetLedger(runtime.audit)
    for i in range(6):
        runtime.write(lambda s, i=i: ledger.reserve(s, ds.id, f"j{i}", 1.0, DELTA, "user/alice"))
    replicas = [runtime, Runtime.open(runtime.home)]
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def settle(i: int) -> None:
        rt = replicas[i % 2]
        barrier.wait()
        try:
            rt.write(lambda s: BudgetLedger(rt.audit).settle(s, ds.id, f"j{i}", 1.0, RUN, "service/training"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=settle, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    replicas[1].close()
    assert errors == []
    budget = dataset_budget(runtime, ds.id)
    assert budget.epsilon_reserved == 0
    assert budget.epsilon_spent == pytest.approx(composed_epsilon(mechanisms=[RUN] * 6, delta=DELTA), abs=1e-5)


# -- the budget's key ---------------------------------------------------------------------

def test_the_same_bytes_under_another_name_share_one_budget(runtime: Runtime) -> None:
    a = _ingest(runtime, "custs", _csv(), epsilon=4.0)
    _charge(runtime, a.id, "j1", 3.0, RUN)
    b = _ingest(runtime, "custs-copy", _csv(), epsilon=8.0)  # asks for more: the existing budget stands
    budget_a, budget_b = dataset_budget(runtime, a.id), dataset_budget(runtime, b.id)
    assert budget_a == budget_b and budget_b.budget_id == f"sha256:{a.raw_digest}"
    assert budget_b.epsilon_total == 4.0 and b.epsilon_total == 4.0
    note = json.loads(b.report_json)["privacy_budget"]
    assert note["requested_epsilon"] == 8.0 and note["epsilon_total"] == 4.0 and "stands" in note["note"]
    with pytest.raises(ResourceExhausted):  # what either name spends, both lose
        _charge(runtime, b.id, "j2", 3.5, None)
    other = _ingest(runtime, "others", _csv(seed=1))
    assert dataset_budget(runtime, other.id).budget_id != budget_a.budget_id


def test_deleting_and_recreating_a_dataset_resumes_its_spent_budget(runtime: Runtime) -> None:
    first = _ingest(runtime, "custs", _csv())
    _charge(runtime, first.id, "j1", 2.0, RUN)
    spent = dataset_budget(runtime, first.id).epsilon_spent
    delete_dataset(runtime, "user/alice", "custs", "erasure request")
    assert dataset_budget(runtime, first.id).epsilon_spent == spent  # deletion never resets it
    again = _ingest(runtime, "custs", _csv())
    assert again.id != first.id
    budget = dataset_budget(runtime, again.id)
    assert budget.epsilon_spent == spent > 0 and budget.epsilon_remaining == pytest.approx(8.0 - spent)
    with runtime.read() as s:
        links = s.execute(select(AuditEvent).where(AuditEvent.action == "privacy.link")).scalars().all()
    assert len(links) == 1 and json.loads(links[0].details)["dataset_id"] == again.id


# -- the operator's cap -------------------------------------------------------------------

@pytest.mark.parametrize("field,epsilon,delta", [("header.epsilon_budget", 10.5, DELTA), ("header.delta_budget", 8.0, 1e-4)])
def test_asking_more_than_the_operators_cap_is_an_invalid_argument_naming_the_field(sqlite_runtime: Runtime, field: str, epsilon: float, delta: float) -> None:
    with pytest.raises(InvalidArgument) as caught:
        _ingest(sqlite_runtime, "custs", _csv(), epsilon=epsilon, delta=delta)
    assert caught.value.field == field and "cap" in caught.value.message
    assert status_for(caught.value).code == grpc.StatusCode.INVALID_ARGUMENT
    assert _ingest(sqlite_runtime, "custs", _csv(), epsilon=10.0, delta=DELTA).epsilon_total == 10.0  # the cap itself is allowed


def test_the_cap_comes_from_privet_toml(tmp_path) -> None:
    home = make_home(tmp_path / "home")
    home.config_path.write_text(home.config_path.read_text().replace("max_dataset_epsilon = 10.0", "max_dataset_epsilon = 2.0"))
    rt = Runtime.open(home)
    try:
        assert rt.settings.max_dataset_epsilon == 2.0
        with pytest.raises(InvalidArgument, match="cap of 2") as caught:
            _ingest(rt, "custs", _csv(), epsilon=3.0)
        assert caught.value.field == "header.epsilon_budget"
    finally:
        rt.close()


# -- the release fact ---------------------------------------------------------------------

def _facts(spent: float | None, cap: float | None) -> ReleaseFacts:
    return ReleaseFacts(version_id="v", model="m", version=1, stage=Stage.APPROVED, owner="user/alice", trainer="user/alice", requester="user/alice",
                        approvers=("user/dana",), trained_on_personal_data=False, has_guarantee=False, epsilon=None, delta=None,
                        dataset_epsilon_spent=spent, dataset_epsilon_cap=cap)


@pytest.mark.parametrize("spent,cap,denied", [(10.001, 10.0, True), (10.0, 10.0, False), (3.0, 10.0, False), (None, 10.0, False), (50.0, None, False)])
def test_the_release_gate_compares_the_datas_cumulative_spend_with_the_cap(sqlite_runtime: Runtime, spent, cap, denied) -> None:
    bob = sqlite_runtime.policies.engine.directory.principals["user/bob"]
    decision = sqlite_runtime.policies.engine.decide(bob, "model.release", ("ModelVersion", "v"), {"caller": "user/bob"}, [_facts(spent, cap).entity()])
    assert decision.allowed is not denied
    assert (DATASET_SPEND_POLICY in decision.policy_ids) is denied


def test_a_release_is_denied_when_the_datasets_cumulative_spend_exceeds_the_cap(runtime: Runtime) -> None:
    ds = _ingest(runtime, "custs", _csv(), epsilon=10.0)
    for i in range(4):
        _charge(runtime, ds.id, f"j{i}", 2.0, Mechanism(0.9, 0.02, 500, DELTA))
    spent = dataset_budget(runtime, ds.id).epsilon_spent
    assert 1.0 < spent < 10.0
    registry = ModelRegistry(runtime)
    principal = runtime.policies.engine.directory.principals
    guarantee = {"epsilon": 2.0, "delta": 1e-6, "noise_multiplier": 1.1, "sample_rate": 0.01, "steps": 500, "accountant": "prv", "max_grad_norm": 1.0}
    establish_version(registry, runtime, VersionSpec("m", guarantee=guarantee), _weights(), dataset=ds)
    registry.request_release(principal["user/alice"], "m", 1)
    # The operator lowers the cap below what the data has spent: no model of it advances.
    lowered = Runtime.open(runtime.home)
    try:
        object.__setattr__(lowered.settings, "max_dataset_epsilon", 1.0)
        with pytest.raises(PermissionDenied) as caught:
            ModelRegistry(lowered).approve(principal["user/dana"], "m", 1)
        assert DATASET_SPEND_POLICY in caught.value.policy_ids
        assert any(f"spent epsilon {spent:g}" in r and "cap of 1" in r for r in caught.value.reasons)
    finally:
        lowered.close()
    assert registry.approve(principal["user/dana"], "m", 1).stage == Stage.APPROVED  # within the default cap of 10


def _weights() -> bytes:
    import numpy as np
    from safetensors.numpy import save

    return save({"w": np.zeros((4, 4), dtype=np.float32)})


# -- the migration ------------------------------------------------------------------------

def test_migration_0007_merges_the_budgets_of_the_same_data(db_url: str) -> None:
    from sqlalchemy import text

    from privet.governance.store import schema
    from privet.governance.store.engine import make_engines

    engines = make_engines(db_url)
    try:
        schema.upgrade(engines.writer, "0006")
        dataset = ("INSERT INTO datasets (id, name, blob_digest, raw_digest, rows, size_bytes, columns_json, profile, profile_digest, domain, key_version, report_json,"
                   " quasi_identifiers_json, epsilon_total, delta, description, created_by, created_at_us, deleted_at_us)"
                   " VALUES (:id, :id, 'b', :raw, 1, 1, '[]', 'default', 'p', '', 1, '{}', '[]', 8, 1e-5, '', 'user/alice', 1, 0)")
        with engines.writer.begin() as conn:
            for id_, raw in (("a", "r1"), ("b", "r1"), ("c", "r2")):
                conn.execute(text(dataset), {"id": id_, "raw": raw})
            for id_, total, reserved, spent in (("a", 8_000_000, 1_000_000, 2_000_000), ("b", 4_000_000, 0, 1_500_000), ("c", 8_000_000, 0, 0), ("orphan", 3_000_000, 0, 0)):
                conn.execute(text("INSERT INTO privacy_budgets VALUES (:id, :t, 1e-5, :r, :s)"), {"id": id_, "t": total, "r": reserved, "s": spent})
            conn.execute(text("INSERT INTO privacy_ledger (dataset_id, job_id, kind, epsilon_micro, delta, noise_multiplier, sample_rate, steps, accountant, privacy_unit, principal, time_us)"
                              " VALUES ('b', 'j', 'charge', 1500000, 1e-5, 1.1, 0.01, 100, 'prv', 'row', 'service/training', 1)"))
        schema.upgrade(engines.writer)
        with engines.writer.connect() as conn:
            budgets = {r[0]: tuple(r[1:]) for r in conn.execute(text("SELECT budget_id, epsilon_total_micro, reserved_micro, spent_micro FROM privacy_budgets"))}
            links = dict(conn.execute(text("SELECT dataset_id, budget_id FROM privacy_budget_datasets")).all())
            entry = conn.execute(text("SELECT budget_id, mechanism, purpose FROM privacy_ledger")).one()
        # The same raw bytes: one budget, what both reserved and spent, and the smaller total
        # (4) raised only to what they had already committed together (4.5): nothing more fits.
        assert budgets == {"sha256:r1": (4_500_000, 1_000_000, 3_500_000), "sha256:r2": (8_000_000, 0, 0), "dataset:orphan": (3_000_000, 0, 0)}
        assert links == {"a": "sha256:r1", "b": "sha256:r1", "c": "sha256:r2", "orphan": "dataset:orphan"}
        assert tuple(entry) == ("sha256:r1", "subsampled-gaussian", "")
    finally:
        engines.dispose()

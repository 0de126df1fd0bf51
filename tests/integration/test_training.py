"""TrainingService end to end over real mTLS: ingest → DP train → registered with its DP facts;
validation up front; the ledger charged exactly what the accountant says."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator

import grpc
import pytest

from privet.governance.config import Home
from privet.governance.datasets.synthetic import customer_table
from privet.governance.privacy.accounting import Mechanism, conservative_epsilon
from privet.governance.privacy.plan import COUNT_SHARE, EVALUATION_SHARE, PREPROCESSING_SHARE
from privet.governance.runtime import Runtime
from privet.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from privet.training.v1 import training_pb2, training_pb2_grpc
from tests.conftest import make_home, metrics_on_any_port, serve_on_any_ports
from tests.helpers import bad_request_fields, channel
from tests.integration.test_ingestion import _csv_bytes, _header, _requests

FEATURES = ["age", "tenure_months", "monthly_spend", "plan", "support_calls"]


@contextlib.contextmanager
def _churn_stubs(home: Home, servers: dict[str, str]) -> Iterator[tuple]:
    """alice's training, registry and ingestion stubs, after she ingested `churn` (ε 8)."""
    with channel(home, "alice", servers["ingestion"]) as ing, channel(home, "alice", servers["training"]) as tr, channel(home, "alice", servers["registry"]) as reg:
        ingestion_pb2_grpc.IngestionServiceStub(ing).CreateDataset(_requests(_header("churn", k=1, quasi_identifiers=[], epsilon_budget=8), _csv_bytes(customer_table(1200, seed=3))))
        yield training_pb2_grpc.TrainingServiceStub(tr), registry_pb2_grpc.RegistryServiceStub(reg), ingestion_pb2_grpc.IngestionServiceStub(ing)


@pytest.fixture
def stubs(servers, sqlite_runtime):
    with _churn_stubs(sqlite_runtime.home, servers) as made:
        yield made


@pytest.fixture(scope="module")
def refusing_stubs(tmp_path_factory: pytest.TempPathFactory):
    """`stubs` once for the module's refused requests: a refusal changes nothing (each test
    checks that nothing is reserved), so they share one set of servers and one dataset, and
    do not start and stop the four servers once each."""
    home = make_home(tmp_path_factory.mktemp("refusals") / "home")
    metrics_on_any_port(home)
    rt = Runtime.open(home)
    running, addresses = serve_on_any_ports(rt)
    try:
        with _churn_stubs(home, addresses) as made:
            yield made
    finally:
        for s in running:
            s.stop(0)
        rt.close()


def _worker_pids() -> list[int]:
    """This process's spawned multiprocessing children (the training workers), from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and b"spawn_main" in cmdline:
            pids.append(int(entry))
    return pids


def _submit(training, **kw):
    base = dict(dataset="churn", target="churned", features=FEATURES, arch="mlp", epochs=2, batch_size=128, learning_rate=0.01, target_epsilon=3.0, delta=1e-5, device="cpu", seed=1)
    base.update(kw)
    return training.SubmitJob(training_pb2.SubmitJobRequest(**base))


def _wait(training, job_id: str, timeout: float = 180) -> training_pb2.Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = training.GetJob(training_pb2.GetJobRequest(job_id=job_id))
        if job.state in (training_pb2.JOB_STATE_SUCCEEDED, training_pb2.JOB_STATE_FAILED, training_pb2.JOB_STATE_CANCELLED):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end")


def test_ingest_train_register_with_dp_facts(stubs) -> None:
    training, registry, ingestion = stubs
    job = _submit(training)
    assert job.state == training_pb2.JOB_STATE_QUEUED and job.epsilon_reserved == 3.0
    progress = list(training.WatchJob(training_pb2.WatchJobRequest(job_id=job.id), timeout=180))
    assert progress[-1].state == training_pb2.JOB_STATE_SUCCEEDED, progress[-1].reason
    done = training.GetJob(training_pb2.GetJobRequest(job_id=job.id))
    g = done.guarantee
    assert 0 < g.epsilon <= 3.0 * (1 + 1e-9) and g.neighbouring_relation == "add-remove-one" and g.privacy_unit == "row"
    mechanism = Mechanism(g.noise_multiplier, g.sample_rate, g.steps, g.sgd_delta)
    assert conservative_epsilon(mechanism)[0] == pytest.approx(g.sgd_epsilon, rel=1e-9)
    # The whole guarantee is DP-SGD plus every other release: scales, domains, classes, evaluation.
    purposes = {r.purpose for r in g.releases}
    assert {"scale:age", "domain:plan", "classes:churned", "evaluation"} <= purposes
    assert g.epsilon == pytest.approx(g.sgd_epsilon + sum(r.epsilon for r in g.releases))
    assert g.delta == pytest.approx(g.sgd_delta + sum(r.delta for r in g.releases)) and g.delta <= 1e-5 * (1 + 1e-9)
    version = registry.GetModelVersion(registry_pb2.GetModelVersionRequest(name=done.model_name, version=done.model_version))
    assert version.guarantee.epsilon == pytest.approx(g.epsilon) and version.guarantee.steps == g.steps
    assert [r.purpose for r in version.guarantee.releases] == [r.purpose for r in g.releases]
    preprocessing = json.loads(version.preprocessing_json)["preprocessor"]
    assert all(c.get("source") == "dp" and "mean" not in c for c in preprocessing["columns"])
    assert version.lineage.training_job_id == job.id and version.lineage.trained_by == "user/alice"
    assert version.trained_on_personal_data
    budget = ingestion.GetDataset(ingestion_pb2.GetDatasetRequest(name="churn")).budget
    # The ledger composes: the budget's spend is at most the job's stated ε.
    assert 0 < budget.epsilon_spent <= g.epsilon + 1e-6 and budget.epsilon_reserved == 0
    requested = registry.RequestRelease(registry_pb2.RequestReleaseRequest(name=done.model_name, version=done.model_version))
    assert requested.stage == registry_pb2.STAGE_CANDIDATE


@pytest.mark.slow
def test_a_job_on_two_ranks_is_one_mechanism_charged_once(stubs) -> None:
    """Data-parallel over two ranks (torch.distributed, gloo): one reservation, one
    accountant; the guarantee is a single mechanism's, charged once."""
    training, registry, ingestion = stubs
    job = _submit(training, workers=2, arch="logreg", epochs=1, batch_size=128, classes=[0, 1], accountant="rdp")
    done = _wait(training, job.id, timeout=300)
    assert done.state == training_pb2.JOB_STATE_SUCCEEDED, done.reason
    assert done.request.workers == 2
    g = done.guarantee
    assert conservative_epsilon(Mechanism(g.noise_multiplier, g.sample_rate, g.steps, g.sgd_delta))[0] == pytest.approx(g.sgd_epsilon, rel=1e-9)
    budget = ingestion.GetDataset(ingestion_pb2.GetDatasetRequest(name="churn")).budget
    assert 0 < budget.epsilon_spent <= g.epsilon + 1e-6 and budget.epsilon_reserved == 0
    version = registry.GetModelVersion(registry_pb2.GetModelVersionRequest(name=done.model_name, version=done.model_version))
    assert version.provenance == "established" and version.guarantee.steps == g.steps


@pytest.mark.parametrize(
    "kw,field",
    [
        ({"target": "nope"}, "target"),
        ({"features": ["age", "ghost"]}, "features[1]"),
        ({"target_epsilon": -1}, "target_epsilon"),
        ({"delta": 0.01}, "delta"),
        ({"batch_size": 5000}, "batch_size"),
        ({"arch": "resnet"}, "arch"),
        ({"arch": "text-minilm"}, "features"),
        ({"device": "tpu"}, "device"),
        ({"feature_bounds": {"age": training_pb2.Bounds(lower=5, upper=1)}}, "feature_bounds[age]"),
        ({"feature_bounds": {"plan": training_pb2.Bounds(lower=0, upper=1)}}, "feature_bounds[plan]"),
        ({"categories": {"age": training_pb2.Domain(values=["x"])}}, "categories[age]"),
        ({"categories": {"plan": training_pb2.Domain(values=[])}}, "categories[plan]"),
        ({"classes": [1]}, "classes"),
        ({"person_key": "ghost"}, "person_key"),
        ({"workers": 9}, "workers"),
    ],
)
def test_bad_requests_name_the_field_and_reserve_nothing(refusing_stubs, kw, field) -> None:
    training, _, ingestion = refusing_stubs
    with pytest.raises(grpc.RpcError) as err:
        _submit(training, **kw)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(err.value) == [field]
    assert ingestion.GetDataset(ingestion_pb2.GetDatasetRequest(name="churn")).budget.epsilon_reserved == 0


def test_budget_exhaustion_and_cancel_before_start(stubs) -> None:
    training, _, ingestion = stubs
    first = _submit(training, target_epsilon=5.0, epochs=50)
    with pytest.raises(grpc.RpcError) as err:
        _submit(training, target_epsilon=5.0)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "left" in err.value.details()
    cancelled = training.CancelJob(training_pb2.CancelJobRequest(job_id=first.id, reason="changed my mind"))
    final = _wait(training, cancelled.id)
    assert final.state in (training_pb2.JOB_STATE_CANCELLED, training_pb2.JOB_STATE_FAILED)
    budget = ingestion.GetDataset(ingestion_pb2.GetDatasetRequest(name="churn")).budget
    assert budget.epsilon_reserved == 0
    if final.progress.step == 0 and final.guarantee.steps == 0:
        # No noisy step; if it started, its planned releases other than DP-SGD (preparation,
        # row count, evaluation: charged as an upper bound once made or reserved) may be spent.
        assert budget.epsilon_spent <= (PREPROCESSING_SHARE + COUNT_SHARE + EVALUATION_SHARE) * 5.0 + 1e-5


def test_sigkill_of_a_worker_fails_the_job_charges_its_steps_and_keeps_serving(stubs, sqlite_runtime: Runtime) -> None:
    training, _, ingestion = stubs
    job = _submit(training, epochs=100, batch_size=64)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        progress = training.GetJob(training_pb2.GetJobRequest(job_id=job.id)).progress
        if progress.step > 0:
            break
        time.sleep(0.1)
    children = _worker_pids()
    assert children, "no worker process found"
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    final = _wait(training, job.id)
    assert final.state == training_pb2.JOB_STATE_FAILED and "worker died" in final.reason
    budget = ingestion.GetDataset(ingestion_pb2.GetDatasetRequest(name="churn")).budget
    assert 0 < budget.epsilon_spent < 3.0 and budget.epsilon_reserved == 0
    again = _submit(training, target_epsilon=1.0)  # the service still serves
    assert again.state == training_pb2.JOB_STATE_QUEUED


def test_a_database_error_mid_run_charges_every_step_taken_and_every_release(stubs, monkeypatch) -> None:
    """The scheduler's database write fails while the worker trains: the worker is
    stopped, and the job ends FAILED charged an upper bound of what it spent (it used to
    end charged nothing, its reservation released)."""
    from sqlalchemy.exc import OperationalError

    from privet.services.training import scheduler as scheduler_module

    real = scheduler_module.record_progress
    calls = {"n": 0}

    def failing(rt, job_id, progress, **kw):
        if progress.get("step", 0) > 0:
            calls["n"] += 1
            raise OperationalError("UPDATE training_jobs", {}, Exception("disk I/O error"))
        return real(rt, job_id, progress, **kw)

    monkeypatch.setattr(scheduler_module, "record_progress", failing)
    training, _, ingestion = stubs
    job = _submit(training, epochs=100, batch_size=64)
    final = _wait(training, job.id)
    assert calls["n"] >= 1
    assert final.state == training_pb2.JOB_STATE_FAILED and "internal error" in final.reason
    budget = ingestion.GetDataset(ingestion_pb2.GetDatasetRequest(name="churn")).budget
    assert budget.epsilon_reserved == 0
    # An unplanned failure after the job read the data is charged its whole reservation:
    # an upper bound of anything it could have spent (steps, releases, the failure itself).
    assert budget.epsilon_spent == pytest.approx(3.0, abs=1e-4)
    assert not _worker_pids()


def test_a_killed_schedulers_job_directory_is_swept(tmp_path) -> None:
    """Training tensors in the clear, left by a scheduler that died, go at the next start;
    a live process's directory stays."""
    import subprocess

    from privet.governance.processes import process_identity
    from privet.services.training.workdirs import JOB_DIR_PREFIX, sweep_job_dirs

    dead = subprocess.Popen(["true"])
    dead.wait()
    left = tmp_path / f"{JOB_DIR_PREFIX}{dead.pid}.1-abcd1234-xyz"
    left.mkdir()
    (left / "data.safetensors").write_bytes(b"rows")
    mine = tmp_path / f"{JOB_DIR_PREFIX}{process_identity()}-abcd1234-xyz"
    mine.mkdir()
    assert sweep_job_dirs(str(tmp_path)) == 1
    assert not left.exists() and mine.exists()


def test_person_level_privacy_states_its_unit(stubs) -> None:
    """With a person key (here the pseudonymised e-mail), one row per person is kept and
    the guarantee says it holds per person."""
    training, registry, _ = stubs
    job = _submit(training, person_key="email", classes=[0, 1], model_name="churn-per-person")
    final = _wait(training, job.id)
    assert final.state == training_pb2.JOB_STATE_SUCCEEDED, final.reason
    assert final.request.person_key == "email" and final.guarantee.privacy_unit == "person:email"
    version = registry.GetModelVersion(registry_pb2.GetModelVersionRequest(name="churn-per-person", version=final.model_version))
    assert version.guarantee.privacy_unit == "person:email"
    with pytest.raises(grpc.RpcError) as err:
        _submit(training, person_key="churned")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(err.value) == ["person_key"]


def test_nothing_is_published_before_the_charge_is_committed(stubs, monkeypatch) -> None:
    """The data's budget cannot hold the job's charge: no model is registered, no metrics
    are shown, and the reservation is released (the model used to be registered first and
    the charge then failed, leaving it public and uncharged)."""
    from privet.governance.errors import FailedPrecondition
    from privet.services.training import scheduler as scheduler_module

    def refuse(*args, **kwargs):
        raise FailedPrecondition("the charges on this budget compose to no finite ε")

    monkeypatch.setattr(scheduler_module, "charge_job", refuse)
    training, registry, ingestion = stubs
    job = _submit(training, model_name="never-published", classes=[0, 1])
    final = _wait(training, job.id)
    assert final.state == training_pb2.JOB_STATE_FAILED and "nothing published" in final.reason
    assert not final.metrics and not final.model_name
    # The name reserved at submit is given back: nothing was ever registered under it.
    with pytest.raises(grpc.RpcError) as err:
        registry.GetModel(registry_pb2.GetModelRequest(name="never-published"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    budget = ingestion.GetDataset(ingestion_pb2.GetDatasetRequest(name="churn")).budget
    # Only the DP row count, which the progress had shown, is charged (2 % of ε 3).
    assert budget.epsilon_reserved == 0 and budget.epsilon_spent == pytest.approx(0.06, abs=1e-3)

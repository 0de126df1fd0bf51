"""Facts Privet establishes, not facts callers assert (issue 18), end to end on real servers.

1. A forged version (altered weights, an invented but self-consistent guarantee, a lineage
   naming someone else's dataset, job and trainer) is never released; the same weights with
   no guarantee neither.
2. A census-like table that trips no detector is personal because its owner declared
   quasi-identifiers and k; only an operator declares otherwise, audited.
3. A queued job follows its dataset's id: delete the dataset and re-ingest other data under
   its name, and the job trains on nothing and charges nothing.
4. Another team's data scientist is refused every act on a dataset, job or model, each
   denial audited; service identities get only what their role needs.
"""

from __future__ import annotations

import json

import grpc
import numpy as np
import pyarrow as pa
import pytest
from safetensors.numpy import load, save
from sqlalchemy import select

from privet.governance.bootstrap import add_user
from privet.governance.datasets.catalog import (
    DatasetSpec,
    create_dataset,
    delete_dataset,
    get_dataset,
)
from privet.governance.datasets.formats import CsvDialect
from privet.governance.datasets.pipeline import AnonymisationSpec
from privet.governance.datasets.synthetic import customer_table
from privet.governance.errors import AlreadyExists, FailedPrecondition, PermissionDenied
from privet.governance.registry import ModelRegistry, VersionSpec
from privet.governance.runtime import Runtime
from privet.governance.store.tables import AuditEvent
from privet.governance.training.jobs import JobSpec, submit_job
from privet.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from privet.training.v1 import training_pb2, training_pb2_grpc
from tests.established import (
    end_job,
    establish_version,
    record_charged_job,
    record_dataset,
    training_service,
)
from tests.helpers import channel, error_info, stubs_as
from tests.integration.test_ingestion import _csv_bytes, _header, _requests

GUARANTEE = {"epsilon": 3.0, "delta": 1e-6, "noise_multiplier": 1.1, "sample_rate": 0.01, "steps": 500, "accountant": "prv", "max_grad_norm": 1.0}
# What the forger invents: tiny ε from a huge σ, one step, arithmetic that checks out.
FORGED = {"epsilon": 0.5, "delta": 1e-6, "noise_multiplier": 50.0, "sample_rate": 0.01, "steps": 1, "accountant": "prv", "max_grad_norm": 1.0}


def _p(rt: Runtime, who: str):
    return rt.policies.engine.directory.principals[who]


def _events(rt: Runtime, action: str) -> list[AuditEvent]:
    with rt.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)))


def _weights(seed: int = 0) -> bytes:
    return save({"w": np.random.default_rng(seed).standard_normal(64).astype(np.float32)})


def _release(registry: ModelRegistry, rt: Runtime, name: str, version: int) -> None:
    registry.request_release(_p(rt, "user/alice"), name, version)
    registry.approve(_p(rt, "user/dana"), name, version)
    registry.release(_p(rt, "user/bob"), name, version)


# -- 1. forged versions ------------------------------------------------------------------------
def test_a_forged_version_never_passes_the_gates(sqlite_runtime) -> None:
    rt = sqlite_runtime
    registry = ModelRegistry(rt)
    genuine = establish_version(registry, rt, VersionSpec("churn", guarantee=GUARANTEE, metrics={"accuracy": 0.9}), _weights())
    assert genuine.provenance == "established" and genuine.trained_on_personal_data and genuine.lineage["trained_by"] == "user/alice"
    _release(registry, rt, "churn", 1)

    # alice downloads the released weights, alters them, and registers them under the same
    # name with an invented guarantee and dana's dataset, job and name as the lineage.
    stolen = load(b"".join(registry.download(_p(rt, "user/alice"), "churn", 1)))
    forged = save({"w": stolen["w"] + np.float32(0.01)})
    lineage = {**genuine.lineage, "trained_by": "user/dana"}
    v = registry.create_version(_p(rt, "user/alice"), VersionSpec("churn", guarantee=FORGED, lineage=lineage, trained_on_personal_data=False), [forged])
    assert v.provenance == "claimed" and v.trained_on_personal_data and v.job_id == ""
    for who in ("user/alice", "user/bob"):
        with pytest.raises(PermissionDenied) as err:
            registry.request_release(_p(rt, who), "churn", v.version)
        assert "personal-data-needs-established-facts" in err.value.policy_ids
        assert any("claimed by its uploader" in r for r in err.value.reasons)
    # Not even an operator can clear it: its lineage names personal data.
    with pytest.raises(FailedPrecondition):
        registry.declare_personal_data(_p(rt, "user/admin"), "churn", v.version, personal=False, reason="trust me")
    # The same weights with no guarantee and no lineage: presumed personal, refused as well.
    bare = registry.create_version(_p(rt, "user/alice"), VersionSpec("churn"), [forged])
    with pytest.raises(PermissionDenied) as err:
        registry.request_release(_p(rt, "user/alice"), "churn", bare.version)
    assert set(err.value.policy_ids) == {"personal-data-needs-established-facts", "dp-guarantee-required"}
    assert registry.get_version("churn", 0, "released").version == 1
    # The audit trail keeps what was claimed beside what was recorded.
    created = [json.loads(e.details) for e in _events(rt, "registry.CreateModelVersion")]
    assert [c["provenance"] for c in created] == ["established", "claimed", "claimed"]
    assert created[1]["claimed_lineage"]["trained_by"] == "user/dana" and created[1]["trainer"] == "user/alice"


def test_the_training_service_cannot_establish_what_its_job_did_not_make(sqlite_runtime) -> None:
    rt = sqlite_runtime
    registry = ModelRegistry(rt)
    service = training_service(rt)
    dataset = record_dataset(rt)
    job = record_charged_job(rt, dataset, submitted_by="user/alice", model_name="m", weights=_weights(1), guarantee=GUARANTEE)
    lineage = {"training_job_id": job.id, "dataset_id": dataset.id}
    cases = [
        (VersionSpec("m", lineage=lineage, guarantee=GUARANTEE), _weights(2), "are not those job"),        # other weights
        (VersionSpec("m", lineage=lineage, guarantee=FORGED), _weights(1), "not the one job"),             # other guarantee
        (VersionSpec("other", lineage=lineage, guarantee=GUARANTEE), _weights(1), "trains model"),         # other model
        (VersionSpec("m", lineage={**lineage, "dataset_id": "x"}, guarantee=GUARANTEE), _weights(1), "trained on dataset"),
        (VersionSpec("m", lineage={"training_job_id": "nope"}, guarantee=GUARANTEE), _weights(1), "no training job"),
    ]
    for spec, weights, message in cases:
        with pytest.raises(FailedPrecondition, match=message):
            registry.create_version(service, spec, [weights])
    assert list(rt.blobs.digests()) == []  # nothing half-registered
    assert registry.create_version(service, VersionSpec("m", lineage=lineage, guarantee=GUARANTEE), [_weights(1)]).provenance == "established"
    with pytest.raises(AlreadyExists):  # one version per job
        registry.create_version(service, VersionSpec("m", lineage=lineage, guarantee=GUARANTEE), [_weights(1)])
    # Until the job ends SUCCEEDED with this version, the gates do not count it established.
    with pytest.raises(PermissionDenied) as err:
        registry.request_release(_p(rt, "user/alice"), "m", 1)
    assert "personal-data-needs-established-facts" in err.value.policy_ids
    # A job that ended FAILED (say its registration timed out) never vouches for the version.
    end_job(rt, job.id, "m", 1, state="FAILED")
    with pytest.raises(PermissionDenied) as err:
        registry.request_release(_p(rt, "user/alice"), "m", 1)
    assert "personal-data-needs-established-facts" in err.value.policy_ids


# -- 2. personal data is not the detectors' call alone ------------------------------------------
def _census(n: int = 400, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    table = pa.table({
        "age": rng.integers(18, 90, n), "sex": rng.choice(["F", "M"], n), "marital_status": rng.choice(["single", "married", "divorced"], n),
        "education": rng.choice(["primary", "secondary", "tertiary"], n), "income": rng.integers(10, 200, n) * 1000, "label": rng.integers(0, 2, n),
    })
    return _csv_bytes(table)


@pytest.fixture
def ingest(servers, sqlite_runtime):
    with stubs_as(sqlite_runtime.home, servers["ingestion"], ingestion_pb2_grpc.IngestionServiceStub) as make:
        yield make


def test_a_census_like_table_is_personal_data(ingest, sqlite_runtime) -> None:
    alice, admin = ingest("alice"), ingest("admin")
    census = alice.CreateDataset(_requests(_header("census", quasi_identifiers=["age", "sex"], k=5), _census()))
    assert not any(c.detected_types for c in census.columns)  # no detector fires
    assert census.personal and list(census.personal_basis) == ["quasi-identifiers", "k-anonymity"]
    said = alice.CreateDataset(_requests(_header("said", quasi_identifiers=[], k=1, personal=True), _census(seed=1)))
    assert said.personal and list(said.personal_basis) == ["declared-by-owner"]
    plain = alice.CreateDataset(_requests(_header("plain", quasi_identifiers=[], k=1), _census(seed=2)))
    assert not plain.personal and list(plain.personal_basis) == []
    # The same rows again, now with no quasi-identifiers: still personal, by what they are.
    again = alice.CreateDataset(_requests(_header("again", quasi_identifiers=[], k=1), _census()))
    assert again.personal and list(again.personal_basis) == [f"same-data-as:{census.id}"]
    # Only an operator declares a dataset not personal, and that is audited.
    with pytest.raises(grpc.RpcError) as err:
        alice.DeclarePersonalData(ingestion_pb2.DeclarePersonalDataRequest(name="census", personal=False, reason="mine"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and error_info(err.value)["policy_ids"] == "personal-data-declared-by-operator"
    with pytest.raises(grpc.RpcError) as err:
        admin.DeclarePersonalData(ingestion_pb2.DeclarePersonalDataRequest(name="census", personal=False))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    declared = admin.DeclarePersonalData(ingestion_pb2.DeclarePersonalDataRequest(name="census", personal=False, reason="aggregated public census"))
    assert not declared.personal and declared.personal_basis[-1] == "operator:user/admin:not-personal"
    events = _events(sqlite_runtime, "ingestion.DeclarePersonalData")
    # The refusals are audited too: alice's by policy, admin's missing reason as bad input.
    assert [(e.principal, e.decision) for e in events] == [("user/alice", "deny"), ("user/admin", "deny"), ("user/admin", "allow")]
    assert json.loads(events[1].details)["status"] == "INVALID_ARGUMENT"
    assert json.loads(events[-1].details)["basis_before"] == ["quasi-identifiers", "k-anonymity"]


def _api_denials(rt: Runtime) -> list[AuditEvent]:
    with rt.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.decision == "deny")))


def test_a_model_trained_on_a_census_like_table_needs_established_dp(sqlite_runtime) -> None:
    rt = sqlite_runtime
    census = create_dataset(rt, "user/alice", DatasetSpec("census", "csv", "default", AnonymisationSpec(("age", "sex"), 5), CsvDialect(), 8.0, 1e-5), [_census()])
    assert census.personal
    registry = ModelRegistry(rt)
    v = establish_version(registry, rt, VersionSpec("m"), _weights(), dataset=census)
    assert v.trained_on_personal_data
    with pytest.raises(PermissionDenied) as err:
        registry.request_release(_p(rt, "user/alice"), "m", v.version)
    assert err.value.policy_ids == ("dp-guarantee-required",)


# -- 3. a job is bound to its dataset's id --------------------------------------------------------
def test_a_queued_job_never_trains_on_data_reingested_under_its_datasets_name(request, sqlite_runtime) -> None:
    rt = sqlite_runtime
    spec = lambda: DatasetSpec("churn", "csv", "default", AnonymisationSpec(), CsvDialect(), 8.0, 1e-5)
    first = create_dataset(rt, "user/alice", spec(), [_csv_bytes(customer_table(600, seed=1))])
    job = submit_job(rt, "user/alice", JobSpec(dataset="churn", target="churned", features=("age", "tenure_months"), epochs=1, batch_size=64, device="cpu",
                                               feature_bounds={"age": [18, 90], "tenure_months": [0, 120]}, classes=(0, 1)))
    delete_dataset(rt, "user/alice", "churn", "erasure request")
    second = create_dataset(rt, "user/alice", spec(), [_csv_bytes(customer_table(600, seed=99))])
    assert second.id != first.id and job.dataset_id == first.id
    servers = request.getfixturevalue("servers")  # the scheduler starts only now, with the job queued
    with channel(rt.home, "alice", servers["training"]) as ch:
        training = training_pb2_grpc.TrainingServiceStub(ch)
        done = list(training.WatchJob(training_pb2.WatchJobRequest(job_id=job.id), timeout=120))[-1]
    assert done.state == training_pb2.JOB_STATE_FAILED and "refused before training" in done.reason
    assert done.epsilon_spent == 0
    with channel(rt.home, "alice", servers["ingestion"]) as ch:
        fresh = ingestion_pb2_grpc.IngestionServiceStub(ch).GetDataset(ingestion_pb2.GetDatasetRequest(name="churn"))
    assert fresh.id == second.id and fresh.budget.epsilon_spent == 0 and fresh.budget.epsilon_reserved == 0
    with rt.read() as session:
        ended = session.scalars(select(AuditEvent).where(AuditEvent.resource == f"job/{job.id}", AuditEvent.action == "training.EndJob")).one()
    assert float(json.loads(ended.details)["epsilon_charged"]) == 0


# -- 4. ownership -------------------------------------------------------------------------------
def test_another_teams_data_scientist_is_refused_and_audited(servers, sqlite_runtime) -> None:
    rt, home = sqlite_runtime, sqlite_runtime.home
    with channel(home, "alice", servers["ingestion"]) as a_ing, channel(home, "erin", servers["ingestion"]) as e_ing, \
         channel(home, "alice", servers["training"]) as a_tr, channel(home, "erin", servers["training"]) as e_tr, \
         channel(home, "erin", servers["registry"]) as e_reg, channel(home, "carol", servers["ingestion"]) as c_ing:
        alice, erin = ingestion_pb2_grpc.IngestionServiceStub(a_ing), ingestion_pb2_grpc.IngestionServiceStub(e_ing)
        d = alice.CreateDataset(_requests(_header("risk-data", k=1, quasi_identifiers=[]), _csv_bytes(customer_table(400, seed=5))))
        assert d.team == "risk" and d.created_by == "user/alice"
        refused = {
            "GetDataset": lambda: erin.GetDataset(ingestion_pb2.GetDatasetRequest(name="risk-data")),
            "ReadDataset": lambda: list(erin.ReadDataset(ingestion_pb2.ReadDatasetRequest(name="risk-data"))),
            "DeleteDataset": lambda: erin.DeleteDataset(ingestion_pb2.DeleteDatasetRequest(name="risk-data", reason="mine now")),
            "SubmitJob": lambda: training_pb2_grpc.TrainingServiceStub(e_tr).SubmitJob(training_pb2.SubmitJobRequest(
                dataset="risk-data", target="churned", features=["age"], epochs=1, batch_size=32, target_epsilon=8.0, delta=1e-5, device="cpu")),
        }
        for rpc, call in refused.items():
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, rpc
        assert [x.name for x in erin.ListDatasets(ingestion_pb2.ListDatasetsRequest()).datasets] == []
        assert alice.GetDataset(ingestion_pb2.GetDatasetRequest(name="risk-data")).budget.epsilon_reserved == 0  # nothing reserved
        # An auditor sees what the dataset is, never its rows.
        carol = ingestion_pb2_grpc.IngestionServiceStub(c_ing)
        assert carol.GetDataset(ingestion_pb2.GetDatasetRequest(name="risk-data")).id == d.id
        job = training_pb2_grpc.TrainingServiceStub(a_tr).SubmitJob(training_pb2.SubmitJobRequest(
            dataset="risk-data", target="churned", features=["age"], epochs=1, batch_size=32, target_epsilon=1.0, delta=1e-5, device="cpu", model_name="risk-model"))
        for call in (lambda: training_pb2_grpc.TrainingServiceStub(e_tr).CancelJob(training_pb2.CancelJobRequest(job_id=job.id, reason="x")),
                     lambda: training_pb2_grpc.TrainingServiceStub(e_tr).GetJob(training_pb2.GetJobRequest(job_id=job.id))):
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # erin cannot add versions under alice's model name either.
        ModelRegistry(rt).create_version(_p(rt, "user/alice"), VersionSpec("alice-model"), [_weights()])
        meta = registry_pb2.ModelVersionMetadata(model_name="alice-model")
        with pytest.raises(grpc.RpcError) as err:
            registry_pb2_grpc.RegistryServiceStub(e_reg).CreateModelVersion(iter([registry_pb2.CreateModelVersionRequest(metadata=meta), registry_pb2.CreateModelVersionRequest(chunk=_weights(3))]))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert get_dataset(rt, "risk-data").id == d.id  # still there, key and all
    denials = [(e.principal, e.action) for e in _api_denials(rt) if e.principal == "user/erin"]
    assert {a for _, a in denials} >= {"dataset.describe", "dataset.read", "dataset.delete", "dataset.spend", "job.cancel", "job.read", "model.add-version"}


def test_a_teammate_works_on_the_teams_things(sqlite_runtime) -> None:
    rt = sqlite_runtime
    add_user(rt.home, "frank", "data-scientist", "risk")
    assert rt.policies.reload_if_changed() or True
    create_dataset(rt, "user/alice", DatasetSpec("shared", "csv", "default", AnonymisationSpec(), CsvDialect(), 8.0, 1e-5), [_csv_bytes(customer_table(300, seed=2))])
    assert get_dataset(rt, "shared", principal="user/frank", action="dataset.spend").created_by == "user/alice"
    with pytest.raises(PermissionDenied):
        get_dataset(rt, "shared", principal="user/erin", action="dataset.spend")
    with pytest.raises(PermissionDenied):  # deleting is the owner's (or an operator's) act
        delete_dataset(rt, "user/frank", "shared", "tidy up")
    assert delete_dataset(rt, "user/admin", "shared", "operator erasure").deleted_at_us > 0


# -- the audit report: established facts only, claims labelled, inconsistencies flagged ---------
def test_the_audit_report_shows_claims_as_claims_and_flags_what_does_not_add_up(sqlite_runtime) -> None:
    from privet.governance.audit.checkpoint import peek_checkpoint
    from privet.governance.audit.leaf import decode_leaf
    from privet.governance.audit.report import render_report, summarise

    rt = sqlite_runtime
    registry = ModelRegistry(rt)
    genuine = establish_version(registry, rt, VersionSpec("m", metrics={"accuracy": 0.9}), _weights(), personal=False)
    _release(registry, rt, "m", 1)
    # An upload that names the genuine job and dataset, with other weights, declared not personal.
    claimed = registry.create_version(_p(rt, "user/alice"), VersionSpec("m", lineage=dict(genuine.lineage)), [_weights(5)])
    registry.declare_personal_data(_p(rt, "user/admin"), "m", claimed.version, personal=False, reason="reviewed")
    _release(registry, rt, "m", claimed.version)
    with rt.read() as session:
        events = [decode_leaf(e.leaf) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
    summary = summarise(events)
    by_ref = {m.ref: m for m in summary.models.values()}
    assert by_ref["m:1"].provenance == "established" and by_ref[f"m:{claimed.version}"].provenance == "claimed"
    flags = summary.flags(by_ref[f"m:{claimed.version}"])
    assert any("named by 2 versions" in f for f in flags) and any("not those job" in f for f in flags)
    note = rt.checkpointer.checkpoint_now().note
    page = render_report(events, peek_checkpoint(note), note=note, verified_message="ok", verifier="test", generated_at_us=0)
    assert 'data-provenance="established"' in page and 'data-provenance="claimed"' in page
    assert "claimed lineage: no privacy budget is attributed to this version" in page


def test_the_same_rows_are_personal_whichever_copy_came_first(sqlite_runtime) -> None:
    """Red team F1: a copy ingested before the one declared personal stayed non-personal."""
    rt = sqlite_runtime
    plain = create_dataset(rt, "user/alice", DatasetSpec("first", "csv", "default", AnonymisationSpec(), CsvDialect(), 8.0, 1e-5), [_census(seed=7)])
    assert not plain.personal
    later = create_dataset(rt, "user/alice", DatasetSpec("second", "csv", "default", AnonymisationSpec(), CsvDialect(), 8.0, 1e-5, personal=True), [_census(seed=7)])
    assert later.personal
    first = get_dataset(rt, "first")
    assert first.personal and json.loads(first.personal_basis_json) == [f"same-data-as:{later.id}"]


def test_a_model_name_is_reserved_while_its_job_waits_and_given_back_when_it_ends_without_a_model(sqlite_runtime) -> None:
    """Red team round 1 F7 / round 2 N5: names are reserved at submit (nobody can take one
    while the job trains), and a cancelled job does not keep its name for ever."""
    from privet.governance.store.registry_tables import Model
    from privet.governance.training.jobs import cancel_job

    rt = sqlite_runtime
    create_dataset(rt, "user/alice", DatasetSpec("d", "csv", "default", AnonymisationSpec(), CsvDialect(), 8.0, 1e-5), [_csv_bytes(customer_table(300, seed=8))])
    job = submit_job(rt, "user/alice", JobSpec(dataset="d", target="churned", features=("age",), epochs=1, batch_size=32, device="cpu", model_name="wanted"))
    with pytest.raises(PermissionDenied):  # erin cannot take it while alice's job waits
        ModelRegistry(rt).create_version(_p(rt, "user/erin"), VersionSpec("wanted"), [_weights()])
    cancel_job(rt, "user/alice", job.id, "changed my mind")
    with rt.read() as session:
        assert session.get(Model, "wanted") is None
    assert ModelRegistry(rt).create_version(_p(rt, "user/erin"), VersionSpec("wanted"), [_weights()]).version == 1

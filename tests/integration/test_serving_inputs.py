"""Serving sees what training saw (issue 21): a version trained on k-anonymous data
generalises raw quasi-identifiers as ingestion did, counts (and on request refuses) values
outside its categories, names its classes — text ones included — and a job that cannot
run is refused at submit with nothing reserved."""

from __future__ import annotations

import json
import subprocess
import sys

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from privet.governance.datasets.synthetic import customer_table
from privet.governance.masking.hierarchy import Hierarchy
from privet.governance.runtime import Runtime
from privet.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from privet.kserve.v2 import grpc_predict_v2_pb2 as pb
from privet.kserve.v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from privet.training.v1 import training_pb2, training_pb2_grpc
from tests.conftest import serve_on_any_ports
from tests.helpers import bad_request_fields, channel
from tests.integration.test_inference import CLIENT
from tests.integration.test_ingestion import _csv_bytes, _header, _requests

FEATURES = ["age", "tenure_months", "monthly_spend", "plan", "support_calls"]
RAW = {"age": ["40", "71"], "tenure_months": [12.0, 96.0], "monthly_spend": [90.0, 25.0], "plan": ["basic", "premium"], "support_calls": [3.0, 0.0]}


def _customers(rows: int, seed: int) -> pa.Table:
    """The synthetic customers with a text target: "churned" or "stayed"."""
    table = customer_table(rows, seed=seed)
    outcome = pc.if_else(pc.equal(table.column("churned"), 1), "churned", "stayed")
    return table.append_column("outcome", outcome).drop_columns(["churned"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One DP job on k-anonymous customers (age generalised at ingestion) with a text
    target, registered by the training service and released."""
    from tests.conftest import make_home, metrics_on_any_port

    home = make_home(tmp_path_factory.mktemp("serving") / "home")
    metrics_on_any_port(home)
    rt = Runtime.open(home)
    running, addresses = serve_on_any_ports(rt)
    try:
        with channel(home, "alice", addresses["ingestion"]) as ing, channel(home, "alice", addresses["training"]) as tr:
            dataset = ingestion_pb2_grpc.IngestionServiceStub(ing).CreateDataset(_requests(
                _header("customers", quasi_identifiers=["age"], k=100, epsilon_budget=8), _csv_bytes(_customers(3000, seed=11))))
            training = training_pb2_grpc.TrainingServiceStub(tr)
            job = training.SubmitJob(training_pb2.SubmitJobRequest(
                dataset="customers", target="outcome", features=FEATURES, arch="mlp", epochs=3, batch_size=128, learning_rate=0.01,
                target_epsilon=3.0, delta=1e-5, device="cpu", seed=7,
                feature_bounds={"tenure_months": training_pb2.Bounds(lower=0, upper=120), "monthly_spend": training_pb2.Bounds(lower=0, upper=250),
                                "support_calls": training_pb2.Bounds(lower=0, upper=10)},
                categories={"plan": training_pb2.Domain(values=["basic", "plus", "premium"])}))
            last = list(training.WatchJob(training_pb2.WatchJobRequest(job_id=job.id), timeout=300))[-1]
            assert last.state == training_pb2.JOB_STATE_SUCCEEDED, last.reason
            job = training.GetJob(training_pb2.GetJobRequest(job_id=job.id))
        ref = {"name": job.model_name, "version": job.model_version}
        with channel(home, "alice", addresses["registry"]) as a, channel(home, "dana", addresses["registry"]) as d, channel(home, "bob", addresses["registry"]) as b:
            registry_pb2_grpc.RegistryServiceStub(a).RequestRelease(registry_pb2.RequestReleaseRequest(**ref, metric_thresholds={"accuracy": 0.5}))
            registry_pb2_grpc.RegistryServiceStub(d).ApproveRelease(registry_pb2.ApproveReleaseRequest(**ref, note="checked"))
            version = registry_pb2_grpc.RegistryServiceStub(b).ReleaseModelVersion(registry_pb2.ReleaseModelVersionRequest(**ref))
        yield {"rt": rt, "home": home, "addresses": addresses, "servers": {s.name: s for s in running}, "dataset": dataset,
               "model": job.model_name, "version": version}
    finally:
        for s in running:
            s.stop(0)
        rt.close()


def _request(model: str, columns: dict) -> pb.ModelInferRequest:
    r = pb.ModelInferRequest(model_name=model)
    r.parameters["purpose"].string_param = "churn-prediction"
    for name, values in columns.items():
        if isinstance(values[0], str):
            t = r.inputs.add(name=name, datatype="BYTES", shape=[len(values)])
            t.contents.bytes_contents.extend(v.encode() for v in values)
        else:
            t = r.inputs.add(name=name, datatype="FP64", shape=[len(values)])
            t.contents.fp64_contents.extend(values)
    return r


def _infer(env, columns: dict, address: str = "") -> pb.ModelInferResponse:
    with channel(env["home"], "app", address or env["addresses"]["inference"]) as ch:
        return pb_grpc.GRPCInferenceServiceStub(ch).ModelInfer(_request(env["model"], columns), timeout=60)


def _probabilities(response: pb.ModelInferResponse) -> np.ndarray:
    out = response.outputs[0]
    return np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(list(out.shape))


def _generalised(env, value: str) -> str:
    """`value` generalised by the level ingestion chose for age (from the dataset's report)."""
    level = env["dataset"].report.generalisation["age"]
    assert level.startswith("bins:"), level
    return str(Hierarchy.parse({"bins": [int(level.split(":")[1])]}, "age").generalise(pa.array([float(value)]), 1)[0])


def test_the_version_records_the_generalisation_and_its_allowed_values(trained) -> None:
    with channel(trained["home"], "alice", trained["addresses"]["registry"]) as ch:
        v = registry_pb2_grpc.RegistryServiceStub(ch).GetModelVersion(registry_pb2.GetModelVersionRequest(name=trained["model"], version=trained["version"].version))
    meta = json.loads(v.preprocessing_json)
    columns = {c["name"]: c for c in meta["preprocessor"]["columns"]}
    assert columns["age"].get("generalisation") == trained["dataset"].report.generalisation["age"], (columns["age"], dict(trained["dataset"].report.generalisation))
    assert columns["age"]["vocabulary"] and all(x.startswith("[") for x in columns["age"]["vocabulary"])
    assert columns["plan"]["vocabulary"] == ["basic", "plus", "premium"] and "generalisation" not in columns["plan"]
    # The text target's classes, DP-selected like numeric ones, are recorded as text.
    assert meta["labels"] == {"column": "outcome", "classes": ["churned", "stayed"]}
    assert "classes:outcome" in {r.purpose for r in v.guarantee.releases}


def test_a_raw_age_answers_as_the_generalised_value_it_falls_in(trained) -> None:
    raw = _probabilities(_infer(trained, RAW))
    generalised = _probabilities(_infer(trained, RAW | {"age": [_generalised(trained, a) for a in RAW["age"]]}))
    np.testing.assert_array_equal(raw, generalised)
    banana = _probabilities(_infer(trained, RAW | {"age": ["banana", "banana"]}))
    assert not np.array_equal(raw, banana)  # 40 is not "unknown" any more


def test_the_output_names_the_classes_and_tritonclient_still_reads_it(trained) -> None:
    response = _infer(trained, RAW)
    out = response.outputs[0]
    assert (out.name, out.datatype, list(out.shape)) == ("probabilities", "FP32", [2, 2])
    assert json.loads(out.parameters["classes"].string_param) == ["churned", "stayed"]
    # The README's call: "age": [40] as a number in JSON, sent by the stock client as text.
    cli = subprocess.run([sys.executable, str(CLIENT), str(trained["home"].root), "app", trained["addresses"]["inference"], trained["model"], "",
                          "churn-prediction", json.dumps({**RAW, "age": ["40", "71"]})], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    np.testing.assert_allclose(np.array(json.loads(cli.stdout)["outputs"]), _probabilities(response), rtol=1e-6)


def _counted(server) -> float:
    """The server's unknown-category counter, as its /metrics endpoint serves it."""
    return server.metrics.registry.get_sample_value("privet_inference_unknown_categories_total") or 0.0


def test_unknown_categories_are_counted_and_refused_when_configured(trained) -> None:
    before = _counted(trained["servers"]["inference"])
    _infer(trained, RAW | {"age": ["banana", "40"], "plan": ["gold", "basic"]})
    assert _counted(trained["servers"]["inference"]) == before + 2  # allowed by default: answered, and counted

    home = trained["home"]
    home.config_path.write_text(home.config_path.read_text() + '\n[inference]\nunknown_categories = "refuse"\n')
    running, addresses = serve_on_any_ports(trained["rt"], ["inference"])
    try:
        _infer(trained, RAW, addresses["inference"])  # known values still serve
        with pytest.raises(grpc.RpcError) as refused:
            _infer(trained, RAW | {"age": ["40", "x" * 500]}, addresses["inference"])
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad_request_fields(refused.value) == ["inputs.age"]
        assert "xxxx" in refused.value.details() and len(refused.value.details()) < 300
        assert _counted(running[0]) == 1
    finally:
        for s in running:
            s.stop(0)
        home.config_path.write_text(home.config_path.read_text().replace('\n[inference]\nunknown_categories = "refuse"\n', ""))
        home.record_bound_address("inference", trained["addresses"]["inference"])  # the first server's again


# -- jobs that cannot run are refused at submit ------------------------------------------------


@pytest.fixture
def submit(servers, sqlite_runtime: Runtime):
    home = sqlite_runtime.home
    table = _customers(300, seed=5).append_column("nothing", pa.nulls(300, pa.string()))
    with channel(home, "alice", servers["ingestion"]) as ing, channel(home, "alice", servers["training"]) as tr:
        ingestion = ingestion_pb2_grpc.IngestionServiceStub(ing)
        ingestion.CreateDataset(_requests(_header("small", k=1, quasi_identifiers=[], epsilon_budget=8), _csv_bytes(table)))
        training = training_pb2_grpc.TrainingServiceStub(tr)

        def call(**kw) -> grpc.RpcError:
            base = dict(dataset="small", target="outcome", features=["tenure_months", "plan"], arch="logreg", epochs=2, batch_size=64,
                        target_epsilon=3.0, delta=1e-5, device="cpu")
            with pytest.raises(grpc.RpcError) as refused:
                training.SubmitJob(training_pb2.SubmitJobRequest(**(base | kw)))
            return refused.value

        yield call, ingestion, training


@pytest.mark.parametrize(("request_", "field", "why"), [
    ({"target": "no_such_column"}, "target", "no column"),
    ({"target": "nothing"}, "target", "no values"),                                 # every target value is missing
    ({"target_epsilon": 0.01}, "target_epsilon", "too small"),                      # no noise meets ε this small on 240 rows
    ({"target_epsilon": 0.1, "epochs": 20, "batch_size": 16}, "target_epsilon", "too small"),
])
def test_a_job_that_cannot_run_is_refused_at_submit_with_nothing_reserved(submit, request_: dict, field: str, why: str) -> None:
    call, ingestion, training = submit
    refused = call(**request_)
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(refused) == [field], refused.details()
    assert why in refused.details()
    dataset = ingestion.GetDataset(ingestion_pb2.GetDatasetRequest(name="small"))
    assert dataset.budget.epsilon_reserved == 0 and dataset.budget.epsilon_spent == 0
    assert [e.kind for e in dataset.ledger if e.kind != "open"] == []
    assert not training.ListJobs(training_pb2.ListJobsRequest()).jobs


def test_a_text_target_is_accepted_and_its_declared_classes_are_text(submit) -> None:
    _call, ingestion, training = submit
    job = training.SubmitJob(training_pb2.SubmitJobRequest(dataset="small", target="outcome", features=["tenure_months", "plan"], arch="logreg",
                                                           epochs=1, batch_size=64, target_epsilon=3.0, delta=1e-5, device="cpu"))
    assert job.state == training_pb2.JOB_STATE_QUEUED
    training.CancelJob(training_pb2.CancelJobRequest(job_id=job.id))


def test_a_typed_target_with_no_values_is_refused_at_submit(servers, sqlite_runtime: Runtime) -> None:
    # A Parquet column keeps its type with every value missing: only the null count the
    # dataset records (from the stored table's statistics) tells that it cannot train.
    import io

    import pyarrow.parquet as pq

    table = _customers(200, seed=7).append_column("label", pa.nulls(200, pa.int64()))
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    home = sqlite_runtime.home
    with channel(home, "alice", servers["ingestion"]) as ing, channel(home, "alice", servers["training"]) as tr:
        made = ingestion_pb2_grpc.IngestionServiceStub(ing).CreateDataset(_requests(
            _header("typed", format=ingestion_pb2.DATA_FORMAT_PARQUET, k=1, quasi_identifiers=[], epsilon_budget=8), buffer.getvalue()))
        assert {c.name for c in made.columns} >= {"label"}
        with pytest.raises(grpc.RpcError) as refused:
            training_pb2_grpc.TrainingServiceStub(tr).SubmitJob(training_pb2.SubmitJobRequest(
                dataset="typed", target="label", features=["tenure_months"], arch="logreg", epochs=1, batch_size=32, target_epsilon=3.0,
                delta=1e-5, device="cpu"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(refused.value) == ["target"]


def test_a_text_target_s_classes_are_declared_by_name(submit) -> None:
    _call, _ingestion, training = submit
    job = training.SubmitJob(training_pb2.SubmitJobRequest(dataset="small", target="outcome", features=["tenure_months", "plan"], arch="logreg",
                                                           epochs=1, batch_size=64, target_epsilon=3.0, delta=1e-5, device="cpu",
                                                           class_names=["churned", "stayed"]))
    shown = training.GetJob(training_pb2.GetJobRequest(job_id=job.id))  # the declared names read back
    assert list(shown.request.class_names) == ["churned", "stayed"] and not shown.request.classes
    training.CancelJob(training_pb2.CancelJobRequest(job_id=job.id, reason="test"))
    with pytest.raises(grpc.RpcError) as both:
        training.SubmitJob(training_pb2.SubmitJobRequest(dataset="small", target="outcome", features=["tenure_months"], arch="logreg", epochs=1,
                                                         batch_size=64, target_epsilon=3.0, delta=1e-5, device="cpu", classes=[0], class_names=["x"]))
    assert both.value.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(both.value) == ["class_names"]

"""The smaller promises of issue 19, item 13, on real servers: each bad input is refused with
the right status and field, never INTERNAL; a damaged dataset blob is DATA_LOSS."""

from __future__ import annotations

import json

import grpc
import pytest
from sqlalchemy import select

from privet.common.v1 import types_pb2
from privet.governance.datasets.synthetic import customer_table
from privet.governance.errors import InvalidArgument
from privet.governance.identity.spiffe import check_name
from privet.governance.store.tables import AuditEvent
from privet.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from privet.kserve.v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from privet.training.v1 import training_pb2, training_pb2_grpc
from tests.helpers import bad_request_fields, channel, eventually
from tests.integration.test_inference import _request, release_toy
from tests.integration.test_ingestion import _csv_bytes, _header, _requests


@pytest.mark.parametrize("name", ["alice\n", "alice\r\n", "Alice", ""])
def test_names_refuse_a_trailing_newline(name: str) -> None:
    with pytest.raises(InvalidArgument):
        check_name(name)


def _refused(call, code: grpc.StatusCode, field: str | None = None) -> None:
    with pytest.raises(grpc.RpcError) as err:
        call()
    assert err.value.code() == code, err.value.details()
    if field is not None:
        assert field in bad_request_fields(err.value), err.value.details()


def test_bad_inference_requests_name_the_field(servers, sqlite_runtime) -> None:
    release_toy(sqlite_runtime.home, servers["registry"])
    with channel(sqlite_runtime.home, "app", servers["inference"]) as ch:
        infer = pb_grpc.GRPCInferenceServiceStub(ch).ModelInfer
        for version in ("²", "1" * 23, "-1", "1.0"):
            _refused(lambda v=version: infer(_request(version=v), timeout=30), grpc.StatusCode.INVALID_ARGUMENT, "model_version")
        twice = _request()
        twice.inputs.add(name="age", datatype="FP64", shape=[2]).contents.fp64_contents.extend([1.0, 2.0])
        _refused(lambda: infer(twice, timeout=30), grpc.StatusCode.INVALID_ARGUMENT, "inputs.age")
        both = _request()
        both.raw_input_contents.extend([b"\x00" * 16, b"\x05\x00\x00\x00basic\x07\x00\x00\x00premium"])
        _refused(lambda: infer(both, timeout=30), grpc.StatusCode.INVALID_ARGUMENT, "inputs.age")
        bad_text = _request()
        bad_text.inputs[1].contents.bytes_contents[0] = b"\xff\xfe"
        _refused(lambda: infer(bad_text, timeout=30), grpc.StatusCode.INVALID_ARGUMENT, "inputs.plan")
        assert infer(_request(), timeout=30).model_name == "churn"  # and good requests still serve


def test_negative_page_sizes_are_invalid_everywhere(servers, sqlite_runtime) -> None:
    home, page = sqlite_runtime.home, types_pb2.PageRequest(page_size=-1)
    with channel(home, "admin", servers["ingestion"]) as i, channel(home, "admin", servers["training"]) as t, channel(home, "admin", servers["registry"]) as r:
        calls = [
            lambda: ingestion_pb2_grpc.IngestionServiceStub(i).ListDatasets(ingestion_pb2.ListDatasetsRequest(page=page)),
            lambda: training_pb2_grpc.TrainingServiceStub(t).ListJobs(training_pb2.ListJobsRequest(page=page)),
            lambda: registry_pb2_grpc.RegistryServiceStub(r).ListModels(registry_pb2.ListModelsRequest(page=page)),
        ]
        for call in calls:
            _refused(call, grpc.StatusCode.INVALID_ARGUMENT, "page.page_size")


def test_a_damaged_dataset_blob_is_data_loss_not_internal(servers, sqlite_runtime) -> None:
    rt = sqlite_runtime
    with channel(rt.home, "alice", servers["ingestion"]) as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        d = stub.CreateDataset(_requests(_header("damaged", k=1, quasi_identifiers=[]), _csv_bytes(customer_table(200, seed=3))))
        path = rt.blobs.path_of(d.digest)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        _refused(lambda: list(stub.ReadDataset(ingestion_pb2.ReadDatasetRequest(name="damaged"))), grpc.StatusCode.DATA_LOSS)


def test_a_refusal_naming_many_columns_arrives_whole_and_is_audited(servers, sqlite_runtime) -> None:
    # 143 columns named in Japanese: the refusal lists them. Bounded in characters it came to
    # ~17 KiB of trailers (percent-encoded, then base64 in the details) and the caller read
    # RESOURCE_EXHAUSTED "metadata size exceeds soft limit" instead of the refusal.
    names = [f"顧客データの列名前番号{i}" for i in range(143)]
    data = (",".join(names) + "\n" + ",".join(str(i) for i in range(143)) + "\n").encode()
    with channel(sqlite_runtime.home, "alice", servers["ingestion"]) as ch, pytest.raises(grpc.RpcError) as err:
        ingestion_pb2_grpc.IngestionServiceStub(ch).CreateDataset(_requests(_header("wide", quasi_identifiers=["年齢"]), data))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert "header.quasi_identifiers[0]" in bad_request_fields(err.value)
    assert "顧客データの列名前番号0" in err.value.details()

    def refusal() -> list[AuditEvent]:
        with sqlite_runtime.read() as session:
            return list(session.scalars(select(AuditEvent).where(
                AuditEvent.action == "ingestion.CreateDataset", AuditEvent.decision == "deny")))

    event = eventually(refusal, 10, "the refusal in the audit log")[0]
    details = json.loads(event.details)
    assert event.principal == "user/alice" and details["status"] == "INVALID_ARGUMENT"
    assert details["field"] == "header.quasi_identifiers[0]"
    # The reason is there, the caller's quoted input is not (the log cannot be erased).
    assert "no column" in details["reason"] and "年齢" not in details["reason"]

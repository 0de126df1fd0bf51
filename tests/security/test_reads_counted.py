"""Every read and every inference request is in the audit log (issue 19, item 9): reads of
rows as they happen, metadata reads and inference outcomes counted in batches."""

from __future__ import annotations

import json

import grpc
from sqlalchemy import select

from privet.governance.datasets.synthetic import customer_table
from privet.governance.store.tables import AuditEvent
from privet.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from privet.kserve.v2 import grpc_predict_v2_pb2 as pb
from privet.kserve.v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.helpers import channel, eventually
from tests.integration.test_ingestion import _csv_bytes, _header, _requests


def _counted(rt, action: str, principal: str) -> int:
    with rt.read() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.action == action, AuditEvent.principal == principal)).all()
    return sum(int(json.loads(e.details).get("requests", 1)) for e in rows)


def test_dataset_reads_and_refused_inference_requests_are_counted(servers, sqlite_runtime) -> None:
    rt, home = sqlite_runtime, sqlite_runtime.home
    with channel(home, "alice", servers["ingestion"]) as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        stub.CreateDataset(_requests(_header("reads", k=1, quasi_identifiers=[]), _csv_bytes(customer_table(200, seed=1))))
        for _ in range(3):
            stub.GetDataset(ingestion_pb2.GetDatasetRequest(name="reads"))
            stub.ListDatasets(ingestion_pb2.ListDatasetsRequest())
        list(stub.ReadDataset(ingestion_pb2.ReadDatasetRequest(name="reads", columns=["age"])))
        stub.PreviewMasking(_requests(_header("preview", k=1, quasi_identifiers=[]), _csv_bytes(customer_table(50, seed=2))))
    assert _counted(rt, "ingestion.ReadDataset", "user/alice") == 1  # rows: at once
    for action in ("ingestion.GetDataset", "ingestion.ListDatasets"):
        eventually(lambda a=action: _counted(rt, a, "user/alice") == 3, 10, f"3 reads of {action} counted")
    eventually(lambda: _counted(rt, "ingestion.PreviewMasking", "user/alice") == 1, 10, "the preview counted")
    # Inference: a request for a version that does not serve, and one for no model at all.
    with channel(home, "app", servers["inference"]) as ch:
        infer = pb_grpc.GRPCInferenceServiceStub(ch)
        for name in ("nothing-here", "nothing-here"):
            request = pb.ModelInferRequest(model_name=name)
            request.parameters["purpose"].string_param = "demo"
            try:
                infer.ModelInfer(request, timeout=10)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND
    eventually(lambda: _counted(rt, "inference.ModelInfer", "user/app") == 2, 10, "2 refused predictions counted")

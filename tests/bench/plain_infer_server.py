"""The baseline for the inference benchmark: the same model behind a plain KServe v2 gRPC
server — no TLS, no policy, no quota, no audit, no batching.

    python -m tests.bench.plain_infer_server PORT WEIGHTS.safetensors METADATA.json
"""

from __future__ import annotations

import json
import pathlib
import sys
from concurrent import futures

import grpc
import pyarrow as pa
import torch

from privet.governance.architectures.models import load_model
from privet.governance.architectures.tabular import TabularPreprocessor
from privet.kserve.v2 import grpc_predict_v2_pb2 as pb
from privet.kserve.v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from privet.services.inference.tensors import probabilities_output, request_table


class PlainServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, weights: bytes, meta: dict, signature: list) -> None:
        self.module = load_model(meta["model"]["arch"], meta["model"], weights)
        self.pre = TabularPreprocessor.from_metadata(meta["preprocessor"])
        self.signature = signature

    def ModelInfer(self, request, context):
        table: pa.Table = request_table(request, self.signature)
        with torch.inference_mode():
            p = torch.softmax(self.module(self.pre.transform(table)), dim=-1).numpy()
        response = pb.ModelInferResponse(model_name=request.model_name, id=request.id)
        probabilities_output(response, p)
        return response


def main() -> None:
    port, weights, meta = int(sys.argv[1]), pathlib.Path(sys.argv[2]).read_bytes(), json.loads(pathlib.Path(sys.argv[3]).read_text())
    signature = [type("S", (), {"name": s["name"], "datatype": s["datatype"]})() for s in meta["signature"]]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(PlainServicer(weights, meta, signature), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(f"ready {bound}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()

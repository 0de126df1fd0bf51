"""inference.GRPCInferenceService (KServe v2): translation only. Whether a request may run is
`admission`'s (released models, quotas, a Cedar decision, audit counts); the tensors'
validation is `tensors`'; batching is `batcher`'s."""

from __future__ import annotations

import threading

import grpc

from privet.governance.errors import InvalidArgument
from privet.governance.runtime import Runtime
from privet.kserve.v2 import grpc_predict_v2_pb2 as pb
from privet.kserve.v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from privet.services.common.identity import caller
from privet.services.inference.admission import PREDICT_ACTION, Admission
from privet.services.inference.batcher import Batcher
from privet.services.inference.loader import LoadedModel, ModelCache
from privet.services.inference.metering import AuditCounter, Quotas
from privet.services.inference.tensors import probabilities_output, request_table

__all__ = ["PREDICT_ACTION", "InferenceServicer"]

SERVER_NAME, SERVER_VERSION = "privet", "1"


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        conf = runtime.settings.extra.get("inference", {})
        grace = conf.get("revocation_grace_seconds")
        self.models = ModelCache(runtime.home, poll_s=float(conf.get("revocation_poll_seconds", 1.0)),
                                 unconfirmed_grace_s=None if grace is None else float(grace), record=runtime.record)
        self.quotas = Quotas(int(conf.get("requests_per_minute", 6000)))
        self.audit = AuditCounter(runtime)
        self._max_rows = int(conf.get("max_batch_rows", 256))
        # 0 by default: continuous batching — what queues while a forward pass runs forms the next
        # batch, so a lone request never waits; a positive delay trades latency for bigger batches.
        self._max_delay_s = float(conf.get("max_queue_delay_ms", 0)) / 1000
        self._batchers: dict[tuple[str, int], Batcher] = {}
        self.admission = Admission(self.models, self.quotas, self.audit, runtime.policies)
        self._lock = threading.Lock()

    def start(self) -> None:
        self.models.start()

    def stop(self, grace: float = 0.0) -> None:
        self.models.stop(grace)
        self.audit.stop(grace)

    def _batcher(self, model: LoadedModel) -> Batcher:
        key = (model.name, model.version)
        with self._lock:
            batcher = self._batchers.get(key)
            if batcher is None or batcher.model is not model:
                batcher = self._batchers[key] = Batcher(model, max_rows=self._max_rows, max_delay_s=self._max_delay_s)
            return batcher

    def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=True)

    def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION, extensions=["privet-governance"])

    def ModelReady(self, request, context):
        try:
            self.models.get(request.name, request.version or "released")
        except Exception:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    def ModelMetadata(self, request, context):
        model = self.models.get(request.name, request.version or "released")
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=model.name, versions=[str(model.version)], platform="privet_pytorch",
            inputs=[tensor(name=s.name, datatype=s.datatype, shape=list(s.shape)) for s in model.inputs],
            outputs=[tensor(name=s.name, datatype=s.datatype, shape=list(s.shape)) for s in model.outputs],
        )

    def ModelInfer(self, request: pb.ModelInferRequest, context: grpc.ServicerContext) -> pb.ModelInferResponse:
        purpose = request.parameters["purpose"].string_param if "purpose" in request.parameters else ""
        admitted = self.admission.admit(caller(context, self._rt), request.model_name, request.model_version, purpose)
        try:
            table = request_table(request, admitted.model.inputs)
        except InvalidArgument:
            admitted.count("invalid")
            raise
        admitted.count("allow")
        remaining = context.time_remaining()
        probabilities = self._batcher(admitted.model).submit(table).result(timeout=min(remaining, 60.0) if remaining else 60.0)
        response = pb.ModelInferResponse(model_name=admitted.model.name, model_version=str(admitted.model.version), id=request.id)
        probabilities_output(response, probabilities)
        return response

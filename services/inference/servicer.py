"""inference.GRPCInferenceService (KServe v2): translation only. Whether a request may run is
`admission`'s (released models, quotas, a Cedar decision, audit counts); the tensors'
validation is `tensors`'; batching is `batcher`'s.

Discovery (Triton's RepositoryIndex and ModelConfig, what tritonclient's
get_model_repository_index and get_model_config call) shows a caller only the released
versions `Admission.decide` lets it call for the purpose it declares in the `purpose`
request header; without one it is shown none, as a request without a purpose is refused."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator

import grpc
from prometheus_client import Counter

from privet.common.v1 import types_pb2
from privet.governance.errors import InvalidArgument, Unavailable
from privet.governance.identity.principals import Principal
from privet.governance.runtime import Runtime
from privet.kserve.v2 import grpc_predict_v2_pb2 as pb
from privet.kserve.v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from privet.kserve.v2 import model_config_pb2 as config_pb
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from privet.services.common.client import secure_channel
from privet.services.common.identity import caller
from privet.services.inference.admission import MAX_PURPOSE, PREDICT_ACTION, Admission, denial
from privet.services.inference.batcher import Batcher
from privet.services.inference.loader import SERVICE_IDENTITY, GenerationSettings, LoadedModel, ModelCache
from privet.services.inference.metering import AuditCounter, Quotas
from privet.services.inference.tensors import generation_request, probabilities_output, request_table, text_output

__all__ = ["PLATFORM", "PREDICT_ACTION", "PURPOSE_HEADER", "InferenceServicer", "triton_data_type"]

SERVER_NAME, SERVER_VERSION = "privet", "1"
PLATFORM = "privet_pytorch"
#: The request metadata key that declares a discovery call's purpose (tritonclient:
#: `get_model_repository_index(headers={"purpose": "churn-prediction"})`); ModelInfer takes it
#: as the `purpose` request parameter instead.
PURPOSE_HEADER = "purpose"
_LIST_PAGE = 1000


def triton_data_type(datatype: str) -> str:
    """Triton's DataType (its name) of a KServe tensor datatype ("BYTES" is TYPE_STRING);
    TYPE_INVALID for one Triton does not name."""
    name = "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"
    return name if name in config_pb.DataType.keys() else "TYPE_INVALID"


def _declared_purpose(context: grpc.ServicerContext) -> str:
    purpose = next((str(value) for key, value in context.invocation_metadata() or () if key == PURPOSE_HEADER), "")
    if len(purpose) > MAX_PURPOSE:
        raise InvalidArgument(PURPOSE_HEADER, f"at most {MAX_PURPOSE} characters")
    return purpose


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
        self._registry_channel: grpc.Channel | None = None

    def _registry(self) -> registry_pb2_grpc.RegistryServiceStub:
        with self._lock:
            if self._registry_channel is None:
                self._registry_channel = secure_channel(self._rt.home, SERVICE_IDENTITY, self._rt.home.settings().addresses["registry"])
            return registry_pb2_grpc.RegistryServiceStub(self._registry_channel)

    def _released(self) -> Iterator[registry_pb2.ModelVersion]:
        """The newest released version of every model, as the registry describes it to the
        inference service."""
        registry, token = self._registry(), ""
        while True:
            page = registry.ListModels(registry_pb2.ListModelsRequest(page=types_pb2.PageRequest(page_size=_LIST_PAGE, page_token=token)), timeout=10)
            for model in page.models:
                if model.released_version:
                    try:
                        yield registry.GetModelVersion(registry_pb2.GetModelVersionRequest(name=model.name, version=model.released_version), timeout=10)
                    except grpc.RpcError as exc:
                        if exc.code() != grpc.StatusCode.NOT_FOUND:  # deleted since the page was read: not listed
                            raise
            token = page.next_page_token
            if not token:
                return

    def _may_use(self, who: Principal, v: registry_pb2.ModelVersion, purpose: str) -> bool:
        return v.stage == registry_pb2.STAGE_RELEASED and self.admission.decide(who, v.model_name, v.version, v.guarantee.epsilon, v.lineage.trained_by or v.created_by, purpose).allowed

    def metrics_collectors(self) -> tuple[Counter, ...]:
        """This service's own Prometheus metrics, served with its RPC metrics."""
        return (self.models.unknown_categories,)

    def start(self) -> None:
        self.models.start()

    def stop(self, grace: float = 0.0) -> None:
        self.models.stop(grace)
        self.audit.stop(grace)
        if self._registry_channel is not None:
            self._registry_channel.close()

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
            name=model.name, versions=[str(model.version)], platform=PLATFORM,
            inputs=[tensor(name=s.name, datatype=s.datatype, shape=list(s.shape)) for s in model.inputs],
            outputs=[tensor(name=s.name, datatype=s.datatype, shape=list(s.shape)) for s in model.outputs],
        )

    def RepositoryIndex(self, request: pb.RepositoryIndexRequest, context: grpc.ServicerContext) -> pb.RepositoryIndexResponse:
        """The released versions the caller may call for its declared purpose (Privet's one
        repository is ""); each is ready, so `ready` filters nothing out."""
        purpose, who = _declared_purpose(context), caller(context, self._rt)
        if request.repository_name:
            return pb.RepositoryIndexResponse()
        index = pb.RepositoryIndexResponse.ModelIndex
        return pb.RepositoryIndexResponse(models=[index(name=v.model_name, version=str(v.version), state="READY")
                                                  for v in self._released() if self._may_use(who, v, purpose)])

    def ModelConfig(self, request: pb.ModelConfigRequest, context: grpc.ServicerContext) -> pb.ModelConfigResponse:
        """The inputs and outputs of a version the caller may call for its declared purpose;
        PERMISSION_DENIED naming the deciding policies otherwise, as ModelInfer would be."""
        purpose, who = _declared_purpose(context), caller(context, self._rt)
        model = self.models.get(request.name, request.version or "released")
        decision = self.admission.decide(who, model.name, model.version, model.epsilon, model.owner, purpose)
        if not decision.allowed:
            raise denial(who.id.principal, model.name, model.version, purpose, decision, self._rt.policies.engine)
        config = config_pb.ModelConfig(
            name=model.name, platform=PLATFORM, backend="pytorch", max_batch_size=0,
            input=[config_pb.ModelInput(name=s.name, data_type=triton_data_type(s.datatype), dims=list(s.shape)) for s in model.inputs],
            output=[config_pb.ModelOutput(name=s.name, data_type=triton_data_type(s.datatype), dims=list(s.shape)) for s in model.outputs],
        )
        return pb.ModelConfigResponse(config=config)

    def ModelInfer(self, request: pb.ModelInferRequest, context: grpc.ServicerContext) -> pb.ModelInferResponse:
        purpose = request.parameters["purpose"].string_param if "purpose" in request.parameters else ""
        generation = GenerationSettings(**generation_request(request))
        admitted = self.admission.admit(caller(context, self._rt), request.model_name, request.model_version, purpose,
                                        max_new_tokens=generation.max_new_tokens)
        try:
            table = request_table(request, admitted.model.inputs)
        except InvalidArgument as exc:
            admitted.count("invalid")
            exc.mark_audited()
            raise
        admitted.count("allow")
        if admitted.model.generates:
            # Token by token, one prompt at a time: nothing to batch across requests.
            texts = admitted.model.generate(table, generation)
            response = pb.ModelInferResponse(model_name=admitted.model.name, model_version=str(admitted.model.version), id=request.id)
            text_output(response, texts)
            return response
        remaining = context.time_remaining()
        try:
            probabilities = self._batcher(admitted.model).submit(table).result(timeout=min(remaining, 60.0) if remaining else 60.0)
        except concurrent.futures.TimeoutError:
            # The batcher is behind: the caller's answer is "busy, retry", not an internal error.
            raise Unavailable(f"{admitted.model.name}:{admitted.model.version} is busy: no answer within the request's deadline; retry later") from None
        response = pb.ModelInferResponse(model_name=admitted.model.name, model_version=str(admitted.model.version), id=request.id)
        probabilities_output(response, probabilities)
        return response

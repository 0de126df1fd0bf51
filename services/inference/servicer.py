"""inference.GRPCInferenceService (KServe v2): released models only, a Cedar decision on every
request before it joins a batch, quotas, validation, audit counts."""

from __future__ import annotations

import functools
import threading

from privet.governance.errors import (
    InvalidArgument,
    PermissionDenied,
    PrivetError,
    ResourceExhausted,
)
from privet.governance.registry.gates import served_model_entity
from privet.governance.runtime import Runtime
from privet.kserve.v2 import grpc_predict_v2_pb2 as pb
from privet.kserve.v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from privet.services.common.identity import caller
from privet.services.inference.batcher import Batcher
from privet.services.inference.loader import LoadedModel, ModelCache
from privet.services.inference.metering import AuditCounter, Quotas
from privet.services.inference.tensors import probabilities_output, request_table

__all__ = ["PREDICT_ACTION", "InferenceServicer"]

PREDICT_ACTION = "inference.Predict"
MAX_PURPOSE = 128  # characters of a declared purpose (and of a model name, as counted)
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
        self._entities: dict[tuple[int, str, int], tuple[object, object]] = {}
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

    def _entities_for(self, engine, model: LoadedModel):
        """The policy entities with this model's facts, parsed once per model and policy set."""
        key = (id(engine), model.name, model.version)
        cached = self._entities.get(key)
        if cached is None or cached[0] is not engine:
            handle = engine.with_entities([served_model_entity(model.name, model.version, model.stage, model.epsilon or None, model.owner)])
            cached = self._entities[key] = (engine, handle)
        return cached[1]

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

    def ModelInfer(self, request, context):
        """Every request is counted in the audit log (in batches), whatever its outcome:
        served, refused by policy, quota or stage, or invalid."""
        who = caller(context, self._rt)
        purpose = request.parameters["purpose"].string_param if "purpose" in request.parameters else ""
        principal = who.id.principal
        if len(purpose) > MAX_PURPOSE:  # the caller's string goes into the log: bounded first
            self.audit.count(principal, request.model_name[:MAX_PURPOSE], 0, "", "(too long)", "invalid", ("invalid-input",))
            raise InvalidArgument("parameters.purpose", f"at most {MAX_PURPOSE} characters")
        try:
            model = self.models.get(request.model_name, request.model_version or "released")
        except PrivetError as exc:
            self.audit.count(principal, request.model_name[:MAX_PURPOSE], 0, "", purpose, "deny", (f"not-served:{type(exc).__name__}",))
            raise
        count = functools.partial(self.audit.count, principal, model.name, model.version, model.digest, purpose)
        try:
            self.quotas.take(principal, model.name)
        except ResourceExhausted:
            count("deny", ("quota-exceeded",))
            raise
        engine = self._rt.policies.engine
        decision = engine.decide(
            who, PREDICT_ACTION, ("ServedModel", f"{model.name}:{model.version}"),
            {"purpose": purpose, "quota_used": self.quotas.used(principal, model.name), "quota_limit": self.quotas.per_minute},
            entities=self._entities_for(engine, model),
        )
        if not decision.allowed:
            count("deny", decision.policy_ids)
            raise PermissionDenied(f"{principal} may not use {model.name}:{model.version} for purpose {purpose!r}: denied by {', '.join(decision.policy_ids)}", policy_ids=decision.policy_ids)
        try:
            table = request_table(request, model.inputs)
        except InvalidArgument:
            count("invalid", decision.policy_ids)
            raise
        count("allow", decision.policy_ids)
        remaining = context.time_remaining()
        probabilities = self._batcher(model).submit(table).result(timeout=min(remaining, 60.0) if remaining else 60.0)
        response = pb.ModelInferResponse(model_name=model.name, model_version=str(model.version), id=request.id)
        probabilities_output(response, probabilities)
        return response

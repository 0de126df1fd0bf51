"""The one interceptor every Privet server runs: identify the caller from its certificate,
turn the RPC into one Cedar request, audit denials, map typed errors to gRPC statuses, and
count each call by method and final status."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from privet.governance.audit.log import Event
from privet.governance.errors import PermissionDenied, PrivetError, ResourceExhausted, Unauthenticated
from privet.governance.identity.spiffe import SpiffeId
from privet.governance.runtime import Runtime
from privet.services.common.errors import abort_with
from privet.services.common.identity import peer_spiffe_id
from privet.services.common.metrics import ServerMetrics
from privet.services.common.uploads import Upload, UploadGate

__all__ = ["GovernanceInterceptor", "action_for"]

# RPCs every authenticated peer may call: liveness, health and reflection carry no data.
_OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
_OPEN_METHODS = {"/inference.GRPCInferenceService/ServerLive", "/inference.GRPCInferenceService/ServerReady"}


def action_for(method: str) -> tuple[str, str] | None:
    """'/privet.registry.v1.RegistryService/GetModel' -> ('registry', 'registry.GetModel')."""
    if method in _OPEN_METHODS or method.startswith(_OPEN_PREFIXES):
        return None
    service_path, _, rpc = method.rpartition("/")
    package = service_path.lstrip("/").split(".")
    api = package[1] if package[0] == "privet" else package[0]
    return api, f"{api}.{rpc}"


class GovernanceInterceptor(grpc.ServerInterceptor):
    def __init__(self, runtime: Runtime, metrics: ServerMetrics | None = None, uploads: UploadGate | None = None, downloads: UploadGate | None = None) -> None:
        self._runtime = runtime
        self._metrics = metrics
        self._uploads = uploads
        self._downloads = downloads
        self._cache: dict = {}
        self._cache_engine: object = None

    def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        target = action_for(handler_call_details.method)
        guard = functools.partial(self._guard, target)
        gate = self._uploads if handler.request_streaming else self._downloads if handler.response_streaming else None
        admit = functools.partial(self._admit, gate, target) if gate is not None and target is not None else None
        return _wrap(handler, guard, handler_call_details.method, self._metrics, admit)

    def _admit(self, gate: UploadGate, target: tuple[str, str], who: str, context: grpc.ServicerContext) -> Upload:
        """A stream slot (services/common/uploads.py), or ResourceExhausted, audited."""
        action = target[1]
        try:
            return gate.admit(who, context, action, waiting=gate is self._uploads)
        except ResourceExhausted as exc:
            api = target[0]
            self._runtime.deny(Event(principal=who, action=action, resource=f"api/{api}", decision="deny", details={"reason": exc.message}))
            raise

    def audit_cut_off(self, upload: Upload) -> None:
        """The watchdog cut an idle upload off: say so in the log (the call itself ends CANCELLED)."""
        api = upload.action.split(".", 1)[0]
        self._runtime.record(Event(principal=upload.principal, action=upload.action, resource=f"api/{api}", decision="deny",
                                   details={"reason": f"stream cut off: idle for more than {upload.idle_limit} s"}))

    def _guard(self, target: tuple[str, str] | None, context: grpc.ServicerContext) -> str:
        """The caller's principal id, once it may make this call (raises otherwise)."""
        spiffe: SpiffeId | None = None
        try:
            spiffe = peer_spiffe_id(context, self._runtime.ca_pem)
            if target is None:
                return spiffe.principal
            principal = self._runtime.policies.engine.directory.resolve(spiffe)
        except Unauthenticated as exc:
            if target is not None:
                self._audit_denial(spiffe.principal if spiffe else "unknown", target, ("unauthenticated",), exc.message)
            raise
        api, action = target
        decision = self._decide(principal, api, action)
        if not decision.allowed:
            self._audit_denial(principal.id.principal, target, decision.policy_ids, "policy denied the call")
            raise PermissionDenied(f"{principal.id.principal} may not call {action}: denied by {', '.join(decision.policy_ids)}", policy_ids=decision.policy_ids)
        return principal.id.principal

    def _decide(self, principal, api: str, action: str):  # type: ignore[no-untyped-def]
        """The per-RPC decision depends only on the policy set, the principal and the RPC, so it
        is computed once per policy set (a reload brings a new engine, and a fresh cache)."""
        engine = self._runtime.policies.engine
        if self._cache_engine is not engine:
            self._cache, self._cache_engine = {}, engine
        key = (principal.id.principal, action)
        decision = self._cache.get(key)
        if decision is None:
            decision = self._cache[key] = engine.decide(principal, action, ("Api", api), {"rpc": action})
        return decision

    def _audit_denial(self, who: str, target: tuple[str, str], policy_ids: tuple[str, ...], why: str) -> None:
        api, action = target
        self._runtime.deny(Event(principal=who, action=action, resource=f"api/{api}", decision="deny", policy_ids=policy_ids, details={"reason": why}))


@contextlib.contextmanager
def _errors_as_status(context: grpc.ServicerContext) -> Iterator[None]:
    """Typed errors become their table row; anything unexpected is INTERNAL with no detail."""
    try:
        yield
    except (PrivetError, NotImplementedError) as exc:
        _abort(context, exc)
    except grpc.RpcError as exc:  # the client's stream failed (cancelled, oversized): pass it on quietly
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        context.abort(code or grpc.StatusCode.CANCELLED, (exc.details() if callable(getattr(exc, "details", None)) else "") or "the request stream failed")
    except Exception as exc:
        if _is_abort(exc):
            raise
        abort_with(context, exc)


def _mapped(behavior: Callable, guard: Callable, streaming_response: bool, method: str,
            metrics: ServerMetrics | None, admit: Callable[[str, grpc.ServicerContext], Upload] | None = None) -> Callable:
    def unary_response(request: Any, context: grpc.ServicerContext) -> Any:
        started = metrics.started() if metrics else 0.0
        try:
            with _errors_as_status(context):
                who = guard(context)
                if admit is not None:  # an upload: a slot, and a clock on every message
                    with admit(who, context) as upload:
                        return behavior(upload.stream(request), context)
                return behavior(request, context)
        finally:
            if metrics:
                metrics.finished(method, context, started)

    def stream_response(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        started = metrics.started() if metrics else 0.0
        try:
            with _errors_as_status(context):
                who = guard(context)
                if admit is not None:  # a download: a slot, and a clock on a client that stops reading
                    with admit(who, context) as stream:
                        yield from stream.responses(behavior(request, context))
                    return
                yield from behavior(request, context)
        finally:
            if metrics:
                metrics.finished(method, context, started)

    return stream_response if streaming_response else unary_response


def _abort(context: grpc.ServicerContext, exc: BaseException) -> None:
    if isinstance(exc, NotImplementedError):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not implemented in this Privet version")
    abort_with(context, exc)


def _is_abort(exc: BaseException) -> bool:
    # grpc raises a bare Exception from context.abort(); let it through untouched.
    return type(exc) is Exception and not exc.args


def _wrap(handler: grpc.RpcMethodHandler, guard: Callable, method: str, metrics: ServerMetrics | None,
          admit: Callable[[str, grpc.ServicerContext], Upload] | None = None) -> grpc.RpcMethodHandler:
    kinds = {
        (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
        (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
        (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
        (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
    }
    attr, factory = kinds[(handler.request_streaming, handler.response_streaming)]
    behavior = _mapped(getattr(handler, attr), guard, handler.response_streaming, method, metrics, admit)
    return factory(behavior, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)

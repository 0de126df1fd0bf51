"""A slot for every stream: uploads (request streams) and downloads (response streams) each
get a bounded share of the workers (`privet.services.common.uploads`), and a clock on every
message, so a slow or idle client cannot hold the server. A stream refused a slot is
RESOURCE_EXHAUSTED, audited."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc

from privet.governance.errors import ResourceExhausted
from privet.governance.runtime import Runtime
from privet.services.common.identity import caller
from privet.services.common.interceptors._rewrap import Behaviour, rewrap
from privet.services.common.interceptors.call_denials import audit_call_denial
from privet.services.common.interceptors.rpc_actions import action_for
from privet.services.common.uploads import Upload, UploadGate

__all__ = ["StreamAdmissionInterceptor"]


class StreamAdmissionInterceptor(grpc.ServerInterceptor):
    def __init__(self, runtime: Runtime, uploads: UploadGate, downloads: UploadGate) -> None:
        self._runtime = runtime
        self._uploads = uploads
        self._downloads = downloads

    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        target = action_for(details.method)
        if handler is None or target is None or not (handler.request_streaming or handler.response_streaming):
            return handler
        action = target[1]
        gate = self._uploads if handler.request_streaming else self._downloads
        uploading = handler.request_streaming

        def admit(context: grpc.ServicerContext) -> Upload:
            who = caller(context, self._runtime).id.principal
            try:
                return gate.admit(who, context, action, waiting=uploading)
            except ResourceExhausted as exc:
                audit_call_denial(self._runtime, who, action, exc.message)
                raise

        def wrap(behaviour: Behaviour, response_streaming: bool) -> Behaviour:
            def unary_response(request: Any, context: grpc.ServicerContext) -> Any:
                with admit(context) as upload:  # an upload: a clock on every message it sends
                    return behaviour(upload.stream(request), context)

            def stream_response(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                with admit(context) as stream:  # a download: a clock on a client that stops reading
                    yield from stream.responses(behaviour(stream.stream(request) if uploading else request, context))

            return stream_response if response_streaming else unary_response

        return rewrap(handler, wrap)

"""A slot for every stream, the open RPCs' included: uploads (request streams) and downloads (response streams) each
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
from privet.services.common.interceptors.rpc_actions import call_name
from privet.services.common.uploads import Upload, UploadGate

__all__ = ["StreamAdmissionInterceptor"]


class StreamAdmissionInterceptor(grpc.ServerInterceptor):
    def __init__(self, runtime: Runtime, uploads: UploadGate, downloads: UploadGate) -> None:
        self._runtime = runtime
        self._uploads = uploads
        self._downloads = downloads

    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or not (handler.request_streaming or handler.response_streaming):
            return handler
        # Every stream, the open ones too (a health Watch, a reflection session): a stream
        # holds a worker for as long as it lasts.
        api, action = call_name(details.method)
        gate = self._uploads if handler.request_streaming else self._downloads
        uploading = handler.request_streaming

        def admit(context: grpc.ServicerContext) -> Upload:
            who = caller(context, self._runtime).id.principal
            try:
                return gate.admit(who, context, action, waiting=uploading, api=api)
            except ResourceExhausted as exc:
                audit_call_denial(self._runtime, who, action, exc.message, api=api)
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

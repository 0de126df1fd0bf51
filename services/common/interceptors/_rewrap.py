"""Wrap a gRPC method handler's behaviour, whichever of the four kinds it is.

Every Privet interceptor changes what happens around a call, never what the call is: this
rebuilds the handler with the same (de)serialisers around a wrapped behaviour. A behaviour
whose response is a stream is a generator, so its wrapper must be one too (a `with` around
`yield from`), or it would leave its scope before the first message is sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from privet.services.common.interceptors.rpc_actions import action_for

__all__ = ["Behaviour", "Scope", "rewrap", "rewrap_in_scope", "scoped_by_action"]

Behaviour = Callable[[Any, grpc.ServicerContext], Any]
Scope = Callable[[grpc.ServicerContext], contextlib.AbstractContextManager[None]]

_FACTORIES = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def rewrap(handler: grpc.RpcMethodHandler, wrap: Callable[[Behaviour, bool], Behaviour]) -> grpc.RpcMethodHandler:
    """`handler` with its behaviour replaced by `wrap(behaviour, response_streaming)`."""
    attr, factory = _FACTORIES[(handler.request_streaming, handler.response_streaming)]
    behaviour = wrap(getattr(handler, attr), handler.response_streaming)
    return factory(behaviour, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)


def rewrap_in_scope(handler: grpc.RpcMethodHandler, scope: Scope) -> grpc.RpcMethodHandler:
    """`handler` with every call run inside `scope(context)`, for the whole of its response."""

    def wrap(behaviour: Behaviour, response_streaming: bool) -> Behaviour:
        def unary_response(request: Any, context: grpc.ServicerContext) -> Any:
            with scope(context):
                return behaviour(request, context)

        def stream_response(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            with scope(context):
                yield from behaviour(request, context)

        return stream_response if response_streaming else unary_response

    return rewrap(handler, wrap)


def scoped_by_action(continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails,
                     scope_for: Callable[[str, str], Scope]) -> Any:
    """The handler for `details`, each call run inside `scope_for(api, action)`'s scope
    when the method is a Privet RPC (`rpc_actions.action_for`); other methods (health,
    reflection) and unknown ones as they are."""
    handler = continuation(details)
    target = action_for(details.method)
    if handler is None or target is None:
        return handler
    return rewrap_in_scope(handler, scope_for(*target))

"""Parse a request only once its caller may make it.

gRPC parses a request with the handler's deserializer before any interceptor runs, so a
malformed body from anyone, known or not, would be refused by gRPC itself, outside
authentication, authorisation, the audit and the metrics, with gRPC's own error text. This
innermost interceptor takes parsing over: the chain receives the raw bytes (its handler
has no deserializer), and the servicer gets them parsed here, after every check, with a
malformed message an INVALID_ARGUMENT naming the request type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc

from privet.governance.errors import InvalidArgument

__all__ = ["RequestParsingInterceptor"]

Parse = Callable[[bytes], Any]


def _parsed(parse: Parse, data: bytes) -> Any:
    try:
        return parse(data)
    except Exception:  # whatever the parser raises on hostile bytes: one clean refusal
        name = getattr(getattr(parse, "__self__", None), "DESCRIPTOR", None)
        what = name.full_name if name is not None else "the request message"
        raise InvalidArgument("request", f"not a valid {what}") from None


def _each_parsed(parse: Parse, messages: Iterable[bytes]) -> Iterator[Any]:
    for data in messages:
        yield _parsed(parse, data)


class RequestParsingInterceptor(grpc.ServerInterceptor):
    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        parse = None if handler is None else handler.request_deserializer
        if parse is None:
            return handler
        kind = ("stream" if handler.request_streaming else "unary") + "_" + ("stream" if handler.response_streaming else "unary")
        behaviour = getattr(handler, kind)
        def parsed_stream(requests: Iterable[bytes], context: grpc.ServicerContext) -> Any:
            return behaviour(_each_parsed(parse, requests), context)

        def parsed_message(request: bytes, context: grpc.ServicerContext) -> Any:
            return behaviour(_parsed(parse, request), context)

        factory = getattr(grpc, f"{kind}_rpc_method_handler")
        wrapped = parsed_stream if handler.request_streaming else parsed_message
        return factory(wrapped, request_deserializer=None, response_serializer=handler.response_serializer)

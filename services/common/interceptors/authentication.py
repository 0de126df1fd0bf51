"""Who is calling: every call, the open ones (health, reflection, liveness) included, needs a
certificate issued directly by this home's CA that names a known principal; any other peer
never reaches a servicer, a stream slot or a parser (UNAUTHENTICATED, audited)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from privet.governance.errors import Unauthenticated
from privet.governance.identity.spiffe import SpiffeId
from privet.governance.runtime import Runtime
from privet.services.common.identity import peer_spiffe_id
from privet.services.common.interceptors._rewrap import rewrap_in_scope
from privet.services.common.interceptors.call_denials import audit_call_denial
from privet.services.common.interceptors.rpc_actions import call_name

__all__ = ["AuthenticationInterceptor"]


class AuthenticationInterceptor(grpc.ServerInterceptor):
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        api, action = call_name(details.method)

        @contextlib.contextmanager
        def authenticated(context: grpc.ServicerContext) -> Iterator[None]:
            spiffe: SpiffeId | None = None
            try:
                spiffe = peer_spiffe_id(context, self._runtime.ca_pem)
                self._runtime.policies.engine.directory.resolve(spiffe)
            except Unauthenticated as exc:
                audit_call_denial(self._runtime, spiffe.principal if spiffe else "unknown", action, exc.message, ("unauthenticated",), api=api)
                raise
            yield

        return rewrap_in_scope(handler, authenticated)

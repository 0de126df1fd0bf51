"""May this principal make this call: one Cedar decision per RPC (`policies/api.cedar`),
denials audited. Decisions per (principal, RPC) are cached for one policy set: a reload brings
a new engine and a fresh cache."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from privet.governance.errors import PermissionDenied
from privet.governance.policy.engine import Decision, PolicyEngine
from privet.governance.runtime import Runtime
from privet.services.common.identity import caller
from privet.services.common.interceptors._rewrap import Scope, scoped_by_action
from privet.services.common.interceptors.call_denials import audit_call_denial

__all__ = ["AuthorizationInterceptor"]


class AuthorizationInterceptor(grpc.ServerInterceptor):
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._cache: dict[tuple[str, str], Decision] = {}
        self._cache_engine: PolicyEngine | None = None

    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        return scoped_by_action(continuation, details, self._authorised)

    def _authorised(self, api: str, action: str) -> Scope:
        @contextlib.contextmanager
        def authorised(context: grpc.ServicerContext) -> Iterator[None]:
            principal = caller(context, self._runtime)
            decision = self._decide(principal, api, action)
            if not decision.allowed:
                who = principal.id.principal
                audit_call_denial(self._runtime, who, action, "policy denied the call", decision.policy_ids)
                raise PermissionDenied(f"{who} may not call {action}: denied by {', '.join(decision.policy_ids)}", policy_ids=decision.policy_ids)
            yield

        return authorised

    def _decide(self, principal: Any, api: str, action: str) -> Decision:
        engine = self._runtime.policies.engine
        if self._cache_engine is not engine:
            self._cache, self._cache_engine = {}, engine
        key = (principal.id.principal, action)
        decision = self._cache.get(key)
        if decision is None:
            decision = self._cache[key] = engine.decide(principal, action, ("Api", api), {"rpc": action})
        return decision

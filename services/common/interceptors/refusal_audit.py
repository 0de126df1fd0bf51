"""A call a servicer refuses (bad input, a failed precondition, a limit, a name taken) lands
in the audit log and the server's log with its reason, as the refusals before the servicer
do (`call_denials`): an operator asked why an upload failed finds it, and a caller probing
with malformed requests leaves a trace. Policy denials are audited where they are decided;
a refusal its raiser already audited (`PrivetError.audited`) is not recorded twice."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from privet.governance.errors import AlreadyExists, FailedPrecondition, InvalidArgument, ResourceExhausted
from privet.governance.runtime import Runtime
from privet.services.common.identity import caller
from privet.services.common.interceptors._rewrap import Scope, scoped_by_action
from privet.services.common.interceptors.call_denials import audit_refusal

__all__ = ["RefusalAuditInterceptor"]

_REFUSALS = (InvalidArgument, FailedPrecondition, ResourceExhausted, AlreadyExists)


class RefusalAuditInterceptor(grpc.ServerInterceptor):
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        return scoped_by_action(continuation, details, self._audited)

    def _audited(self, api: str, action: str) -> Scope:
        @contextlib.contextmanager
        def audited(context: grpc.ServicerContext) -> Iterator[None]:
            try:
                yield
            except _REFUSALS as exc:
                if not exc.audited:
                    who = caller(context, self._runtime).id.principal
                    audit_refusal(self._runtime, who, action, exc, api=api)
                raise

        return audited

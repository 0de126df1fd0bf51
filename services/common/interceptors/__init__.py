"""The interceptors every Privet server runs, one job each, outermost first:

1. `CallMetricsInterceptor`: counts and times every call by its final status;
2. `ErrorStatusInterceptor`: maps whatever is raised inside to a status, by the one table;
3. `AuthenticationInterceptor`: the peer's certificate must name a known principal;
4. `AuthorizationInterceptor`: one Cedar decision per RPC;
5. `StreamAdmissionInterceptor`: a bounded slot and an idle clock for every stream;
6. `RefusalAuditInterceptor`: a request the servicer refuses is audited with its reason;
7. `RequestParsingInterceptor`: the request is parsed only now (gRPC hands the chain raw
   bytes), so a malformed message never skips the checks above.

The denials of 3-6 land in the audit log (`call_denials`). The order matters: metrics see the
status the errors settled on, no stream slot is spent on a caller who may not call, and no
parser runs on a message from one.
"""

from __future__ import annotations

import grpc

from privet.governance.runtime import Runtime
from privet.services.common.interceptors.authentication import AuthenticationInterceptor
from privet.services.common.interceptors.authorization import AuthorizationInterceptor
from privet.services.common.interceptors.call_denials import audit_call_denial, audit_cut_off
from privet.services.common.interceptors.call_metrics import CallMetricsInterceptor
from privet.services.common.interceptors.refusal_audit import RefusalAuditInterceptor
from privet.services.common.interceptors.request_parsing import RequestParsingInterceptor
from privet.services.common.interceptors.rpc_actions import action_for
from privet.services.common.interceptors.status_mapping import ErrorStatusInterceptor
from privet.services.common.interceptors.stream_admission import StreamAdmissionInterceptor
from privet.services.common.metrics import ServerMetrics
from privet.services.common.uploads import UploadGate

__all__ = ["action_for", "audit_call_denial", "audit_cut_off", "governance_interceptors"]


def governance_interceptors(runtime: Runtime, metrics: ServerMetrics, uploads: UploadGate, downloads: UploadGate) -> list[grpc.ServerInterceptor]:
    """The chain, in the order gRPC runs it (the first wraps all the others)."""
    return [
        CallMetricsInterceptor(metrics),
        ErrorStatusInterceptor(),
        AuthenticationInterceptor(runtime),
        AuthorizationInterceptor(runtime),
        StreamAdmissionInterceptor(runtime, uploads, downloads),
        RefusalAuditInterceptor(runtime),
        RequestParsingInterceptor(),
    ]

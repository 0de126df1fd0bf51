"""AuditService servicer (served by the registry process)."""

from __future__ import annotations

from governance.runtime import Runtime
from privet.audit.v1 import audit_pb2_grpc


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

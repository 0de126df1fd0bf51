"""Health checks of running Privet servers, as a client over mTLS."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from privet.governance.config import SERVICES, Home
from privet.services.common.client import secure_channel

__all__ = ["HealthResult", "check_health", "wait_healthy"]


@dataclass(frozen=True)
class HealthResult:
    service: str
    address: str
    status: str  # SERVING | NOT_SERVING | UNREACHABLE: <why>

    @property
    def ok(self) -> bool:
        return self.status == "SERVING"


def check_health(home: Home, principal: str, names: tuple[str, ...] = SERVICES, timeout: float = 2.0) -> list[HealthResult]:
    settings = home.settings()
    results = []
    for name in names:
        address = settings.addresses[name]
        with secure_channel(home, principal, address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as exc:
                status = f"UNREACHABLE: {exc.code().name}"
        results.append(HealthResult(name, address, status))
    return results


def wait_healthy(home: Home, principal: str, names: tuple[str, ...] = SERVICES, timeout: float = 60.0) -> list[HealthResult]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        results = check_health(home, principal, names, timeout=1.0)
        if all(r.ok for r in results) or time.monotonic() > deadline:
            return results
        time.sleep(0.2)

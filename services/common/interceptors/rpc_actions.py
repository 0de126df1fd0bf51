"""Which Cedar action an RPC is, and which RPCs need no decision."""

from __future__ import annotations

__all__ = ["action_for"]

# RPCs every authenticated peer may call: liveness, health and reflection carry no data.
_OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
_OPEN_METHODS = {"/inference.GRPCInferenceService/ServerLive", "/inference.GRPCInferenceService/ServerReady"}


def action_for(method: str) -> tuple[str, str] | None:
    """'/privet.registry.v1.RegistryService/GetModel' -> ('registry', 'registry.GetModel');
    None for the open RPCs."""
    if method in _OPEN_METHODS or method.startswith(_OPEN_PREFIXES):
        return None
    service_path, _, rpc = method.rpartition("/")
    package = service_path.lstrip("/").split(".")
    api = package[1] if package[0] == "privet" else package[0]
    return api, f"{api}.{rpc}"

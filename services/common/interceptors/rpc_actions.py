"""Which Cedar action an RPC is, and which RPCs need no decision."""

from __future__ import annotations

__all__ = ["action_for", "call_name"]

# RPCs every known principal may call: liveness, health and reflection carry no data.
_OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
_OPEN_METHODS = {"/inference.GRPCInferenceService/ServerLive", "/inference.GRPCInferenceService/ServerReady"}


def call_name(method: str) -> tuple[str, str]:
    """The (api, action) a call is decided, admitted and audited under:
    '/privet.registry.v1.RegistryService/GetModel' -> ('registry', 'registry.GetModel'),
    '/inference.GRPCInferenceService/ServerLive' -> ('inference', 'inference.ServerLive'),
    '/grpc.health.v1.Health/Watch' -> ('grpc', 'grpc.health.v1.Health.Watch')."""
    service_path, _, rpc = method.rpartition("/")
    service_path = service_path.lstrip("/")
    package = service_path.split(".")
    if package[0] == "grpc":  # health and reflection: named in full, they share a package root
        return "grpc", f"{service_path}.{rpc}"
    api = package[1] if package[0] == "privet" and len(package) > 1 else package[0]
    return api, f"{api}.{rpc}"


def action_for(method: str) -> tuple[str, str] | None:
    """`call_name(method)` for an RPC the policy decides; None for the open RPCs."""
    if method in _OPEN_METHODS or method.startswith(_OPEN_PREFIXES):
        return None
    return call_name(method)

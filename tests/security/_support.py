"""What the security tests share: one set of real servers per module, channels acting as
any certificate, and a generic way to call any RPC by its descriptor."""

from __future__ import annotations

import contextlib
import pathlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass

from privet.governance.identity.ca import IssuedIdentity
from privet.governance.runtime import Runtime
from tests.conftest import make_home, metrics_on_any_port, serve_on_any_ports

__all__ = ["CallResult", "Servers", "call_rpc", "creds_for", "running_servers"]


@dataclass(frozen=True)
class Servers:
    runtime: Runtime
    addresses: dict[str, str]  # server name -> "127.0.0.1:port"


@contextlib.contextmanager
def running_servers(root: pathlib.Path, *, limits: dict[str, int] | None = None) -> Iterator[Servers]:
    """What the `servers` fixture does, for a whole module: a fresh home and SQLite file,
    all four servers on loopback ports they chose; `limits` overrides privet.toml's [limits]."""
    home = make_home(root)
    text = home.config_path.read_text()
    for key, value in (limits or {}).items():
        text, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert count == 1, f"privet.toml has no single {key} setting"
    home.config_path.write_text(text)
    metrics_on_any_port(home)
    runtime = Runtime.open(home)
    try:
        running, addresses = serve_on_any_ports(runtime)
        try:
            yield Servers(runtime, addresses)
        finally:
            for server in running:
                server.stop(0)
    finally:
        runtime.close()


def creds_for(ca_pem: bytes, issued: IssuedIdentity, chain_extra: bytes = b"") -> grpc.ChannelCredentials:
    """Client credentials presenting `issued` (followed by `chain_extra` PEMs, if any)."""
    return grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=issued.key_pem, certificate_chain=issued.cert_pem + chain_extra)


@dataclass(frozen=True)
class CallResult:
    code: grpc.StatusCode
    error: grpc.RpcError | None = None


def call_rpc(ch: grpc.Channel, service: ServiceDescriptor, method: MethodDescriptor, *, timeout: float = 5.0) -> CallResult:
    """Call `method` with an empty request (a one-message stream for client streaming; for a
    server stream, read the first response or the error) and return the status it ended with."""
    path = f"/{service.full_name}/{method.name}"
    request_cls, response_cls = GetMessageClass(method.input_type), GetMessageClass(method.output_type)
    codec = {"request_serializer": request_cls.SerializeToString, "response_deserializer": response_cls.FromString}
    try:
        if method.client_streaming and method.server_streaming:
            stream = ch.stream_stream(path, **codec)(iter([request_cls()]), timeout=timeout)
            next(stream, None)
            stream.cancel()
        elif method.client_streaming:
            ch.stream_unary(path, **codec)(iter([request_cls()]), timeout=timeout)
        elif method.server_streaming:
            stream = ch.unary_stream(path, **codec)(request_cls(), timeout=timeout)
            next(stream, None)
            stream.cancel()
        else:
            ch.unary_unary(path, **codec)(request_cls(), timeout=timeout)
    except grpc.RpcError as exc:
        return CallResult(exc.code(), exc)
    return CallResult(grpc.StatusCode.OK)

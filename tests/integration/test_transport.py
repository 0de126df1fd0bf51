"""Real servers on loopback over mTLS: who gets in, what they may call, and what is audited."""

from __future__ import annotations

import datetime as dt
import os
import pathlib
import socket
import ssl
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from sqlalchemy import select

from privet.audit.v1 import audit_pb2, audit_pb2_grpc
from privet.governance.config import Home
from privet.governance.identity.ca import LocalCA
from privet.governance.identity.spiffe import SpiffeId
from privet.governance.runtime import Runtime
from privet.governance.store.tables import AuditEvent
from privet.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from tests.helpers import channel, error_info


def _creds_from(ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem)


def _health(ch: grpc.Channel) -> str:
    reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def test_health_and_reflection_answer_real_clients(servers: dict[str, str], sqlite_runtime: Runtime) -> None:
    home = sqlite_runtime.home
    for name, address in servers.items():
        with channel(home, "alice", address) as ch:
            assert _health(ch) == "SERVING", name
    with channel(home, "alice", servers["registry"]) as ch:
        db = ProtoReflectionDescriptorDatabase(ch)
        services = set(db.get_services())
        assert {"privet.registry.v1.RegistryService", "privet.audit.v1.AuditService", "grpc.health.v1.Health"} <= services
        method = db.FindFileContainingSymbol("privet.registry.v1.RegistryService")
        assert method.name == "privet/registry/v1/registry.proto"


def test_client_without_certificate_is_refused(servers: dict[str, str], sqlite_runtime: Runtime) -> None:
    creds = grpc.ssl_channel_credentials(root_certificates=sqlite_runtime.home.ca_cert.read_bytes())
    with grpc.secure_channel(servers["registry"], creds) as ch:
        with pytest.raises(grpc.RpcError) as err:
            _health(ch)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_client_from_another_ca_is_refused(servers: dict[str, str], sqlite_runtime: Runtime, tmp_path) -> None:
    rogue = LocalCA.ensure(tmp_path / "rogue")
    issued = rogue.issue(SpiffeId("user", "admin"))
    creds = _creds_from(sqlite_runtime.home.ca_cert.read_bytes(), issued.cert_pem, issued.key_pem)
    with grpc.secure_channel(servers["registry"], creds) as ch:
        with pytest.raises(grpc.RpcError) as err:
            _health(ch)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    "spiffe,extra",
    [(None, ()), (SpiffeId("user", "mallory"), ()), (None, ("spiffe://evil.example/user/admin",))],
    ids=["no-san", "unknown-principal", "foreign-trust-domain"],
)
def test_certificates_without_a_known_identity_are_unauthenticated(servers, sqlite_runtime, spiffe, extra) -> None:
    home = sqlite_runtime.home
    issued = LocalCA.ensure(home.pki).issue(spiffe, extra_uris=extra)
    creds = _creds_from(home.ca_cert.read_bytes(), issued.cert_pem, issued.key_pem)
    with grpc.secure_channel(servers["registry"], creds) as ch:
        with pytest.raises(grpc.RpcError) as err:
            registry_pb2_grpc.RegistryServiceStub(ch).ListModels(registry_pb2.ListModelsRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_expired_certificate_is_refused(servers, sqlite_runtime) -> None:
    home = sqlite_runtime.home
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    issued = LocalCA.ensure(home.pki).issue(SpiffeId("user", "admin"), not_before=long_ago, lifetime=dt.timedelta(days=1))
    with grpc.secure_channel(servers["registry"], _creds_from(home.ca_cert.read_bytes(), issued.cert_pem, issued.key_pem)) as ch:
        with pytest.raises(grpc.RpcError) as err:
            _health(ch)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_permission_denied_names_the_policy_and_is_audited(servers, sqlite_runtime) -> None:
    with channel(sqlite_runtime.home, "carol", servers["ingestion"]) as ch:
        with pytest.raises(grpc.RpcError) as err:
            ingestion_pb2_grpc.IngestionServiceStub(ch).DeleteDataset(ingestion_pb2.DeleteDatasetRequest(name="x"), timeout=5)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "auditor-read-only" in err.value.details()
    assert error_info(err.value)["policy_ids"] == "auditor-read-only"
    with sqlite_runtime.read() as session:
        event = session.exec(select(AuditEvent).where(AuditEvent.decision == "deny")).scalars().one()
    assert (event.principal, event.action, event.resource) == ("user/carol", "ingestion.DeleteDataset", "api/ingestion")
    assert "auditor-read-only" in event.policy_ids


def test_default_deny_is_named(servers, sqlite_runtime) -> None:
    with channel(sqlite_runtime.home, "app", servers["registry"]) as ch:
        with pytest.raises(grpc.RpcError) as err:
            registry_pb2_grpc.RegistryServiceStub(ch).ListModels(registry_pb2.ListModelsRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(err.value)["policy_ids"] == "default-deny"


def test_unknown_rpcs_answer_unimplemented(servers, sqlite_runtime) -> None:
    with channel(sqlite_runtime.home, "admin", servers["registry"]) as ch:
        call = ch.unary_unary("/privet.registry.v1.RegistryService/NoSuchRpc", request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as err:
            call(b"", timeout=5)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_oversized_messages_are_refused(servers, sqlite_runtime) -> None:
    limit = sqlite_runtime.settings.max_message_bytes
    ch = grpc.secure_channel(
        servers["registry"],
        _creds_from(sqlite_runtime.home.ca_cert.read_bytes(), sqlite_runtime.home.cert("admin").read_bytes(), sqlite_runtime.home.key("admin").read_bytes()),
        options=[("grpc.max_send_message_length", limit * 2)],
    )
    with ch, pytest.raises(grpc.RpcError) as err:
        registry_pb2_grpc.RegistryServiceStub(ch).GetModel(registry_pb2.GetModelRequest(name="x" * (limit + 1)), timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_tls_1_2_is_refused(servers, sqlite_runtime) -> None:
    home: Home = sqlite_runtime.home
    host, port = servers["registry"].split(":")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(home.ca_cert)
    ctx.load_cert_chain(home.cert("admin"), home.key("admin"))
    ctx.set_alpn_protocols(["h2"])
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
                pass
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    with socket.create_connection((host, int(port)), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.version() == "TLSv1.3"


def test_deadlines_are_honoured(servers, sqlite_runtime) -> None:
    with channel(sqlite_runtime.home, "carol", servers["registry"]) as ch:
        with pytest.raises(grpc.RpcError) as err:
            audit_pb2_grpc.AuditServiceStub(ch).GetCheckpoint(audit_pb2.GetCheckpointRequest(), timeout=0.000001)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


_GRPC_FIRST = """
import sys, pathlib
import grpc  # before privet: the cipher-suite pin comes too late for this process
from privet.governance.bootstrap import init_home
from privet.governance.config import Home
from privet.governance.runtime import Runtime
from privet.services.common.tls_probe import TLS12Accepted
from privet.services.launcher import start_services
home = Home(pathlib.Path(sys.argv[1])); init_home(home)
try:
    start_services(Runtime.open(home), ["registry"], {"registry": "127.0.0.1:0"})
except TLS12Accepted as exc:
    print("refused:", exc); sys.exit(3)
print("served"); sys.exit(0)
"""


def test_a_process_that_imported_grpc_first_refuses_to_serve(tmp_path: pathlib.Path) -> None:
    # Whatever the import order, a server that would complete a TLS 1.2 handshake never serves.
    env = {k: v for k, v in os.environ.items() if k != "GRPC_SSL_CIPHER_SUITES"}
    done = subprocess.run([sys.executable, "-c", _GRPC_FIRST, str(tmp_path / "home")], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 3 and "TLSv1.2 handshake" in done.stdout, (done.stdout, done.stderr[-2000:])

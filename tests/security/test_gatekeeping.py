"""The chain in front of every RPC, attacked (red team, issue 20): open streams hold slots
like any other, unknown principals reach nothing, a malformed body is parsed only after the
checks, and what a caller reads back is bounded."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import select

from privet.governance.identity.ca import LocalCA
from privet.governance.identity.spiffe import SpiffeId
from privet.governance.store.tables import AuditEvent
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from privet.services.common.errors import MAX_MESSAGE_BYTES
from tests.helpers import channel, eventually
from tests.security._support import Servers, creds_for, running_servers

UNKNOWN = SpiffeId("user", "mallory")  # from our CA, not in principals.yaml


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with running_servers(tmp_path_factory.mktemp("gate") / "home") as servers:
        yield servers


def _mallory(env: Servers, server: str = "registry") -> grpc.Channel:
    identity = LocalCA.ensure(env.runtime.home.pki).issue(UNKNOWN)
    return grpc.secure_channel(env.addresses[server], creds_for(env.runtime.home.ca_cert.read_bytes(), identity))


def _events(env: Servers, principal: str, action: str) -> list[AuditEvent]:
    with env.runtime.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.principal == principal, AuditEvent.action == action)))


def _raw(ch: grpc.Channel, method: str, body: bytes) -> grpc.RpcError:
    call = ch.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as err:
        call(body, timeout=10)
    return err.value


def test_an_unknown_principal_reaches_no_open_rpc_and_is_audited(env: Servers) -> None:
    with _mallory(env) as ch:
        with pytest.raises(grpc.RpcError) as err:
            health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    eventually(lambda: _events(env, "user/mallory", "grpc.health.v1.Health.Check"), 10, "the refused health check in the log")


def test_health_watch_streams_take_bounded_slots(env: Servers) -> None:
    # Watch streams never end on their own: without a slot each one kept a worker for ever.
    with channel(env.runtime.home, "carol", env.addresses["registry"]) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        held = [stub.Watch(health_pb2.HealthCheckRequest()) for _ in range(4)]
        try:
            for stream in held:
                assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.RpcError) as err:
                next(stub.Watch(health_pb2.HealthCheckRequest(), timeout=10))
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            # ...while everyone else's calls are still served.
            with channel(env.runtime.home, "admin", env.addresses["registry"]) as other:
                registry_pb2_grpc.RegistryServiceStub(other).ListModels(registry_pb2.ListModelsRequest(), timeout=10)
        finally:
            for stream in held:
                stream.cancel()
    eventually(lambda: [e for e in _events(env, "user/carol", "grpc.health.v1.Health.Watch") if e.decision == "deny"], 10,
               "the refused stream in the log")


@pytest.mark.parametrize("who,code", [("mallory", grpc.StatusCode.UNAUTHENTICATED), ("app", grpc.StatusCode.PERMISSION_DENIED),
                                      ("carol", grpc.StatusCode.INVALID_ARGUMENT)])
def test_a_malformed_body_is_parsed_only_after_the_checks(env: Servers, who: str, code: grpc.StatusCode) -> None:
    method = "/privet.audit.v1.AuditService/ListEvents"
    ch = _mallory(env) if who == "mallory" else channel(env.runtime.home, who, env.addresses["registry"])
    with ch:
        err = _raw(ch, method, b"\xff\xff\xff")
    assert err.code() == code, err.details()
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert err.details() == "request: not a valid privet.audit.v1.ListEventsRequest"
    else:
        principal = "user/mallory" if who == "mallory" else f"user/{who}"
        eventually(lambda: [e for e in _events(env, principal, "audit.ListEvents") if e.decision == "deny"], 10, "the denial in the log")


def test_what_a_caller_reads_back_is_bounded(env: Servers) -> None:
    with channel(env.runtime.home, "admin", env.addresses["registry"]) as ch:
        with pytest.raises(grpc.RpcError) as err:
            registry_pb2_grpc.RegistryServiceStub(ch).GetModel(registry_pb2.GetModelRequest(name="x" * 200_000), timeout=10)
    # The status survives (an unbounded echo of the name overflowed the metadata limit).
    assert err.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
    assert len(err.value.details().encode()) <= MAX_MESSAGE_BYTES
    assert json.dumps(err.value.details())  # one line of text, not a metadata error

"""Certificate edge cases beyond tests/integration/test_transport.py (which covers no
certificate, another CA, no SAN, an unknown principal, a SAN only of another trust domain,
expiry, TLS 1.2), and oversized messages on the streaming uploads.

Who a caller is comes from exactly one SPIFFE URI SAN of a certificate that chains to our
CA, directly: lookalike ids, two ids, a subject CN, a sub-CA, a leaf used as a CA, a
not-yet-valid or re-signed certificate must never turn into a known principal.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
import time
from collections.abc import Callable, Iterator, Sequence

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import select

from privet.governance.identity.ca import IssuedIdentity, LocalCA
from privet.governance.store.tables import AuditEvent
from privet.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from privet.services.common.client import channel_credentials
from tests.helpers import error_info
from tests.security._support import Servers, creds_for, running_servers

MAX_MESSAGE = 1 << 20  # this module's servers: 1 MiB messages, 3 MiB uploads
MAX_UPLOAD = 3 << 20


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with running_servers(tmp_path_factory.mktemp("certs") / "home", limits={"max_message_bytes": MAX_MESSAGE, "max_upload_bytes": MAX_UPLOAD}) as servers:
        yield servers


@pytest.fixture(scope="module")
def ca(env: Servers) -> LocalCA:
    return LocalCA.ensure(env.runtime.home.pki)


# --- building certificates the CA would never issue ------------------------------------------

def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def build(
    issuer_cert: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    uris: Sequence[str] = (),
    cn: str = "test",
    usages: Sequence[x509.ObjectIdentifier] | None = (ExtendedKeyUsageOID.CLIENT_AUTH,),
    is_ca: bool = False,
    not_before: dt.datetime | None = None,
    lifetime: dt.timedelta = dt.timedelta(days=1),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate signed by `issuer_key`, named as its issuer `issuer_cert`'s subject."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Privet"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + lifetime)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if is_ca:
        builder = builder.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    else:
        builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        if usages is not None:  # None: no extended key usage at all
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    if uris:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def _identity(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> IssuedIdentity:
    return IssuedIdentity(_pem(cert), _key_pem(key))


def _connect(env: Servers, identity: IssuedIdentity, chain_extra: bytes = b"", server: str = "registry") -> grpc.Channel:
    return grpc.secure_channel(env.addresses[server], creds_for(env.runtime.home.ca_cert.read_bytes(), identity, chain_extra))


def _error_of(call: Callable[[], object]) -> grpc.RpcError | None:
    try:
        call()
    except grpc.RpcError as exc:
        return exc
    return None


def _list_models(ch: grpc.Channel) -> grpc.RpcError | None:
    return _error_of(lambda: registry_pb2_grpc.RegistryServiceStub(ch).ListModels(registry_pb2.ListModelsRequest(), timeout=5))


def _rotate_keys(ch: grpc.Channel) -> grpc.RpcError | None:
    """An admin-only RPC (the key-encryption keys): what an impersonation would aim for."""
    return _error_of(lambda: registry_pb2_grpc.RegistryServiceStub(ch).RotateKeys(registry_pb2.RotateKeysRequest(), timeout=5))


def _handshake_refused(ch: grpc.Channel) -> bool:
    try:
        health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    except grpc.RpcError as exc:
        return exc.code() == grpc.StatusCode.UNAVAILABLE
    return False


# --- SPIFFE ids that look like ours --------------------------------------------------------

LOOKALIKES = [
    "spiffe://privet.local.evil.example/user/admin",  # our domain as a prefix of another
    "spiffe://evil.example/service/registry",  # another trust domain, a service's path
    "spiffe://PRIVET.LOCAL/user/admin",  # SPIFFE trust domains are lower case
    "spiffe://privet.local:443/user/admin",  # a port is not part of a SPIFFE id
    "spiffe://admin@privet.local/user/admin",  # nor user info
    "spiffe://privet.local/user/admin/",
    "spiffe://privet.local//user/admin",
    "spiffe://privet.local/user/../user/admin",
    "spiffe://privet.local/user/admin/extra",
    "spiffe://privet.local/user/admin?as=admin",
    "spiffe://privet.local/user/admin#admin",
    "spiffe://privet.local/user/Admin",
    "spiffe://privet.local/User/admin",
    "spiffe://privet.local/role/admin",
    "spiffe://privet.local/service/admin",  # the right name under the wrong kind
    "spiffe://privet.local/user/registry",  # a service's name as a user
    "spiffe://privet.local/user/admin%2F",
]


@pytest.mark.parametrize("uri", LOOKALIKES)
def test_lookalike_spiffe_ids_are_unauthenticated(env: Servers, ca: LocalCA, uri: str) -> None:
    cert, key = build(ca.cert, ca.key, uris=[uri], cn="admin")
    with _connect(env, _identity(cert, key)) as ch:
        err = _rotate_keys(ch)
    assert err is not None and err.code() == grpc.StatusCode.UNAUTHENTICATED, err and err.code()


@pytest.mark.parametrize(
    "uris",
    [
        ("spiffe://privet.local/user/alice", "spiffe://privet.local/user/admin"),
        ("spiffe://privet.local/user/admin", "spiffe://privet.local/user/alice"),
        ("spiffe://privet.local/user/alice", "spiffe://privet.local/user/alice"),
        ("spiffe://privet.local/user/alice", "spiffe://evil.example/user/admin"),
        ("spiffe://privet.local/service/training", "spiffe://privet.local/service/inference"),
    ],
    ids=["alice+admin", "admin+alice", "alice-twice", "alice+foreign-admin", "two-services"],
)
def test_two_spiffe_ids_are_unauthenticated(env: Servers, ca: LocalCA, uris: tuple[str, str]) -> None:
    cert, key = build(ca.cert, ca.key, uris=uris)
    with _connect(env, _identity(cert, key)) as ch:
        err = _list_models(ch)
    assert err is not None and err.code() == grpc.StatusCode.UNAUTHENTICATED
    with env.runtime.read() as session:
        last = session.exec(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).scalars().one()
    assert (last.principal, last.action, last.decision) == ("unknown", "registry.ListModels", "deny")


@pytest.mark.parametrize("other", ["SPIFFE://privet.local/user/admin", "Spiffe://privet.local/user/admin", "https://privet.local/user/admin", "urn:spiffe:privet.local:user:admin"])
def test_a_second_uri_that_only_resembles_a_spiffe_id_grants_nothing(env: Servers, ca: LocalCA, other: str) -> None:
    # The caller is alice or nobody; never admin. (Today: alice, the other URI is ignored.)
    cert, key = build(ca.cert, ca.key, uris=["spiffe://privet.local/user/alice", other])
    with _connect(env, _identity(cert, key)) as ch:
        err = _rotate_keys(ch)
    assert err is not None and err.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)
    if err.code() == grpc.StatusCode.PERMISSION_DENIED:
        assert err.details().startswith("user/alice may not call registry.RotateKeys")


@pytest.mark.parametrize("cn", ["admin", "user/admin", "spiffe://privet.local/user/admin"])
def test_the_subject_common_name_never_names_the_caller(env: Servers, ca: LocalCA, cn: str) -> None:
    cert, key = build(ca.cert, ca.key, uris=["spiffe://privet.local/user/alice"], cn=cn)
    with _connect(env, _identity(cert, key)) as ch:
        err = _rotate_keys(ch)
    assert err is not None and err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(err)["policy_ids"] == "default-deny"
    cert, key = build(ca.cert, ca.key, uris=[], cn=cn)
    with _connect(env, _identity(cert, key)) as ch:
        err = _rotate_keys(ch)
    assert err is not None and err.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_service_certificate_acts_as_that_service_not_as_an_admin(env: Servers) -> None:
    """Server certificates are also client certificates (EKU serverAuth + clientAuth): the
    registry's own identity calling its own admin-only RPC is still only service/registry."""
    home = env.runtime.home
    for service in ("registry", "training", "inference", "ingestion"):
        with grpc.secure_channel(env.addresses["registry"], channel_credentials(home, service)) as ch:
            err = _rotate_keys(ch)
        assert err is not None and err.code() == grpc.StatusCode.PERMISSION_DENIED, service
        assert err.details().startswith(f"service/{service} may not call registry.RotateKeys")


# --- chains that must not verify -------------------------------------------------------------

def test_a_certificate_without_client_auth_usage_is_refused(env: Servers, ca: LocalCA) -> None:
    cert, key = build(ca.cert, ca.key, uris=["spiffe://privet.local/user/admin"], usages=[ExtendedKeyUsageOID.SERVER_AUTH])
    with _connect(env, _identity(cert, key)) as ch:
        assert _handshake_refused(ch)


def test_a_leaf_certificate_cannot_act_as_a_ca(env: Servers) -> None:
    """alice's key signs a certificate for user/admin; alice's certificate (CA:false) rides
    along in the chain. The server must refuse the chain, not believe the SAN."""
    home = env.runtime.home
    alice_cert = x509.load_pem_x509_certificate(home.cert("alice").read_bytes())
    alice_key = serialization.load_pem_private_key(home.key("alice").read_bytes(), password=None)
    assert isinstance(alice_key, ec.EllipticCurvePrivateKey)
    forged, key = build(alice_cert, alice_key, uris=["spiffe://privet.local/user/admin"])
    with _connect(env, _identity(forged, key), chain_extra=_pem(alice_cert)) as ch:
        assert _handshake_refused(ch)
    with _connect(env, _identity(forged, key)) as ch:
        assert _handshake_refused(ch)


def _never_authenticated(ch: grpc.Channel) -> bool:
    """Refused at the handshake, or authenticated as nobody: never a known principal."""
    if _handshake_refused(ch):
        return True
    err = _list_models(ch)
    return err is not None and err.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_certificate_with_no_extended_key_usage_is_not_a_principal(env: Servers, ca: LocalCA) -> None:
    # The TLS stack accepts a leaf with no EKU at all; Privet's CA never issues one.
    cert, key = build(ca.cert, ca.key, uris=["spiffe://privet.local/user/admin"], usages=None)
    with _connect(env, _identity(cert, key)) as ch:
        assert _never_authenticated(ch)


def test_a_ca_certificate_is_not_a_principal(env: Servers, ca: LocalCA) -> None:
    # A CA:TRUE certificate from our CA (which only ever issues leaves) naming user/admin.
    cert, key = build(ca.cert, ca.key, uris=["spiffe://privet.local/user/admin"], is_ca=True)
    with _connect(env, _identity(cert, key)) as ch:
        assert _never_authenticated(ch)


# gRPC's TLS stack (BoringSSL) does not enforce our CA's pathLen:0, so the interceptor also
# requires the leaf to be issued directly by PRIVET_HOME/pki/ca.pem.
@pytest.mark.parametrize(
    "send_intermediate",
    [False, True],
    ids=["intermediate-absent", "intermediate-in-chain"],
)
def test_a_client_certificate_from_a_sub_ca_is_refused(env: Servers, ca: LocalCA, send_intermediate: bool) -> None:
    """Privet's CA signs leaves only (pathLen 0): a certificate for user/admin issued by a
    sub-CA under it must not authenticate, whether or not the client sends the intermediate."""
    intermediate, intermediate_key = build(ca.cert, ca.key, cn="Privet sub-CA", is_ca=True)
    leaf, key = build(intermediate, intermediate_key, uris=["spiffe://privet.local/user/admin"])
    with _connect(env, _identity(leaf, key), chain_extra=_pem(intermediate) if send_intermediate else b"") as ch:
        assert _never_authenticated(ch)


def test_a_certificate_not_yet_valid_is_refused(env: Servers, ca: LocalCA) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    cert, key = build(ca.cert, ca.key, uris=["spiffe://privet.local/user/admin"], not_before=later)
    with _connect(env, _identity(cert, key)) as ch:
        assert _handshake_refused(ch)


def test_a_certificate_with_a_broken_signature_is_refused(env: Servers, ca: LocalCA) -> None:
    cert, key = build(ca.cert, ca.key, uris=["spiffe://privet.local/user/admin"])
    der = bytearray(cert.public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01  # inside the ECDSA signature's last integer; the structure still parses
    tampered = x509.load_der_x509_certificate(bytes(der))
    assert tampered.tbs_certificate_bytes == cert.tbs_certificate_bytes
    with _connect(env, IssuedIdentity(_pem(tampered), _key_pem(key))) as ch:
        assert _handshake_refused(ch)


# --- oversized messages on the streaming uploads ---------------------------------------------

def _big_channel(env: Servers, server: str) -> grpc.Channel:
    """alice, with a client that would send far more than the servers accept."""
    return grpc.secure_channel(
        env.addresses[server],
        channel_credentials(env.runtime.home, "alice"),
        options=[("grpc.max_send_message_length", 4 * MAX_UPLOAD), ("grpc.max_receive_message_length", 4 * MAX_UPLOAD)],
    )


def _csv(rows: int) -> bytes:
    return b"a,b\n" + b"".join(b"%d,%d\n" % (i, i * 2) for i in range(rows))


def _dataset_requests(name: str, chunks: Sequence[bytes]) -> Iterator[ingestion_pb2.CreateDatasetRequest]:
    header = ingestion_pb2.DatasetHeader(name=name, format=ingestion_pb2.DATA_FORMAT_CSV, profile="default", epsilon_budget=8, delta_budget=1e-5)
    yield ingestion_pb2.CreateDatasetRequest(header=header)
    for chunk in chunks:
        yield ingestion_pb2.CreateDatasetRequest(chunk=chunk)


def _safetensors(n: int) -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}).encode()
    return struct.pack("<Q", len(header)) + header + bytes(4 * n)


def _model_requests(name: str, chunks: Sequence[bytes]) -> Iterator[registry_pb2.CreateModelVersionRequest]:
    yield registry_pb2.CreateModelVersionRequest(metadata=registry_pb2.ModelVersionMetadata(model_name=name))
    for chunk in chunks:
        yield registry_pb2.CreateModelVersionRequest(chunk=chunk)


def _blob_files(env: Servers) -> set[str]:
    """Every file under the blob store: committed blobs and temporaries (under tmp/)."""
    root = env.runtime.settings.blob_dir
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _eventually_absent(lookup) -> grpc.StatusCode:
    """NOT_FOUND now and still a moment later (the server may still be unwinding the call)."""
    codes = []
    for _ in range(2):
        try:
            lookup()
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.append(exc.code())
        time.sleep(0.3)
    assert set(codes) == {grpc.StatusCode.NOT_FOUND}, codes
    return codes[-1]


def test_a_dataset_chunk_over_the_message_limit_is_refused_and_leaves_nothing(env: Servers) -> None:
    before = _blob_files(env)
    # A well-formed file first, so a server that took the cut-off stream as complete would
    # create a dataset from it.
    with _big_channel(env, "ingestion") as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            stub.CreateDataset(_dataset_requests("oversized-chunk", [_csv(50), b"9,9\n" * (MAX_MESSAGE // 4 + 1)]), timeout=20)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        _eventually_absent(lambda: stub.GetDataset(ingestion_pb2.GetDatasetRequest(name="oversized-chunk"), timeout=5))
    assert _blob_files(env) == before, "a refused upload left a blob or a temporary behind"


def test_a_dataset_upload_over_the_upload_limit_is_refused_and_leaves_nothing(env: Servers) -> None:
    before = _blob_files(env)
    piece = _csv(60_000)[: MAX_MESSAGE // 2]  # every message within the limit, the sum past it
    piece = piece[: piece.rindex(b"\n") + 1]
    with _big_channel(env, "ingestion") as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            stub.CreateDataset(_dataset_requests("oversized-upload", [piece] + [piece[4:]] * (2 * MAX_UPLOAD // MAX_MESSAGE + 1)), timeout=30)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "limit" in err.value.details()
        _eventually_absent(lambda: stub.GetDataset(ingestion_pb2.GetDatasetRequest(name="oversized-upload"), timeout=5))
    assert _blob_files(env) == before, "a refused upload left a blob or a temporary behind"


def test_a_weights_chunk_over_the_message_limit_is_refused_and_leaves_nothing(env: Servers) -> None:
    before = _blob_files(env)
    with _big_channel(env, "registry") as ch:
        stub = registry_pb2_grpc.RegistryServiceStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            stub.CreateModelVersion(_model_requests("oversized-chunk", [_safetensors(4), bytes(MAX_MESSAGE + 1)]), timeout=20)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        _eventually_absent(lambda: stub.GetModel(registry_pb2.GetModelRequest(name="oversized-chunk"), timeout=5))
    assert _blob_files(env) == before, "a refused upload left a blob or a temporary behind"


def test_weights_over_the_upload_limit_are_refused_and_leave_nothing(env: Servers) -> None:
    before = _blob_files(env)
    weights = _safetensors((MAX_UPLOAD // 4) + 1024)  # a valid file, just too big
    pieces = [weights[i : i + MAX_MESSAGE // 2] for i in range(0, len(weights), MAX_MESSAGE // 2)]
    with _big_channel(env, "registry") as ch:
        stub = registry_pb2_grpc.RegistryServiceStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            stub.CreateModelVersion(_model_requests("oversized-weights", pieces), timeout=30)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "limit" in err.value.details()
        _eventually_absent(lambda: stub.GetModel(registry_pb2.GetModelRequest(name="oversized-weights"), timeout=5))
    assert _blob_files(env) == before, "a refused upload left a blob or a temporary behind"

"""privet init: the home's CA, certificates, keys and policies."""

from __future__ import annotations

import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from privet.governance.bootstrap import add_user, init_home
from privet.governance.config import SERVICES, Home
from privet.governance.errors import InvalidArgument, Unauthenticated
from privet.governance.identity.ca import spiffe_ids_of
from privet.governance.identity.principals import load_directory
from privet.governance.identity.spiffe import parse_spiffe_id

DEFAULT_USERS = {"admin": "admin", "alice": "data-scientist", "erin": "data-scientist", "bob": "release-manager", "dana": "approver", "carol": "auditor", "app": "application"}


def _cert(home: Home, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(home.cert(name).read_bytes())


def test_init_creates_ca_and_spiffe_identities(home: Home) -> None:
    ca = _cert(home, "ca")
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey) and ca.public_key().curve.name == "secp256r1"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for name in DEFAULT_USERS:
        cert = _cert(home, name)
        assert spiffe_ids_of(cert) == [f"spiffe://privet.local/user/{name}"]
        cert.verify_directly_issued_by(ca)
        assert stat.S_IMODE(home.key(name).stat().st_mode) == 0o600
    for service in SERVICES:
        assert spiffe_ids_of(_cert(home, service)) == [f"spiffe://privet.local/service/{service}"]
    directory = load_directory(home.policies / "principals.yaml")
    assert {p.name: p.role for p in directory.users()} == DEFAULT_USERS
    assert (home.keys / "audit.key").exists() and (home.keys / "audit.pub").exists()
    assert (home.keys / "attestation.key").exists() and (home.keys / "attestation.pub").exists()
    assert {p.name: p.team for p in directory.users() if p.team} == {"alice": "risk", "erin": "fraud"}
    assert (home.policies / "api.cedar").exists() and (home.policies / "privet.cedarschema").exists()


def test_init_is_idempotent_and_never_overwrites(home: Home) -> None:
    keys = {p: p.read_bytes() for p in list(home.pki.glob("*.key")) + list(home.keys.glob("*"))}
    edited = home.policies / "api.cedar"
    edited.write_text(edited.read_text() + "\n// edited by an operator\n")
    report = init_home(home)
    assert report.created == []
    assert all(p.read_bytes() == data for p, data in keys.items())
    assert edited.read_text().endswith("// edited by an operator\n")


def test_add_principal_issues_a_certificate(home: Home) -> None:
    assert add_user(home, "gwen", "auditor")
    assert spiffe_ids_of(_cert(home, "gwen")) == ["spiffe://privet.local/user/gwen"]
    assert load_directory(home.policies / "principals.yaml").principals["user/gwen"].role == "auditor"
    assert not add_user(home, "gwen", "auditor")  # idempotent
    with pytest.raises(InvalidArgument, match="role"):
        add_user(home, "frank", "overlord")
    with pytest.raises(InvalidArgument, match="already exists"):
        add_user(home, "gwen", "admin")
    # A team is kept with the principal, and cannot be changed by adding it again.
    assert add_user(home, "hana", "data-scientist", "fraud")
    assert load_directory(home.policies / "principals.yaml").principals["user/hana"].team == "fraud"
    with pytest.raises(InvalidArgument, match="team"):
        add_user(home, "hana", "data-scientist", "risk")


@pytest.mark.parametrize(
    "uri",
    ["spiffe://evil.example/user/alice", "spiffe://privet.local/admin", "spiffe://privet.local/user/Alice", "https://privet.local/user/alice", "spiffe://privet.local/robot/x"],
)
def test_foreign_or_malformed_spiffe_ids_are_refused(uri: str) -> None:
    with pytest.raises(Unauthenticated):
        parse_spiffe_id(uri)

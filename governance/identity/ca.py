"""A local certificate authority (ECDSA P-256) issuing SPIFFE-identified certificates."""

from __future__ import annotations

import datetime as dt
import ipaddress
import pathlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from privet.governance.fsutil import write_atomic
from privet.governance.identity.spiffe import SpiffeId

__all__ = ["LocalCA", "IssuedIdentity", "spiffe_ids_of"]

CA_LIFETIME = dt.timedelta(days=3650)
LEAF_LIFETIME = dt.timedelta(days=397)


@dataclass(frozen=True)
class IssuedIdentity:
    cert_pem: bytes
    key_pem: bytes


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


class LocalCA:
    """The CA's key and certificate. Load with `LocalCA.ensure(dir)`, which creates them once."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.cert = cert
        self.key = key

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def ensure(cls, pki: pathlib.Path) -> LocalCA:
        """Create `ca.pem`/`ca.key` in `pki` unless they exist; never overwrite them."""
        cert_path, key_path = pki / "ca.pem", pki / "ca.key"
        if not key_path.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Privet"), x509.NameAttribute(NameOID.COMMON_NAME, "Privet local CA")])
            now = _now()
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + CA_LIFETIME)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256())
            )
            write_atomic(key_path, _key_pem(key), mode=0o600, overwrite=False)
            write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), overwrite=False)
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        return cls(cert, loaded)

    def issue(
        self,
        spiffe: SpiffeId | None,
        *,
        server: bool = False,
        not_before: dt.datetime | None = None,
        lifetime: dt.timedelta = LEAF_LIFETIME,
        extra_uris: tuple[str, ...] = (),
    ) -> IssuedIdentity:
        """Issue a leaf certificate whose URI SAN is `spiffe` (None: no SAN, for tests of refusal).

        Server certificates also name localhost and 127.0.0.1 so clients can check the host.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or (_now() - dt.timedelta(minutes=5))
        cn = spiffe.principal if spiffe else "anonymous"
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Privet"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if server else [ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in ((spiffe.uri,) if spiffe else ()) + extra_uris]
        if server:
            names += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1"))]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return IssuedIdentity(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def ensure_identity(self, pki: pathlib.Path, file_name: str, spiffe: SpiffeId, *, server: bool = False) -> bool:
        """Write `<file_name>.pem/.key` unless a key already exists. Returns True if it issued one."""
        key_path = pki / f"{file_name}.key"
        if key_path.exists():
            return False
        issued = self.issue(spiffe, server=server)
        write_atomic(pki / f"{file_name}.pem", issued.cert_pem)
        return write_atomic(key_path, issued.key_pem, mode=0o600, overwrite=False)


def spiffe_ids_of(cert: x509.Certificate) -> list[str]:
    """The URI SANs of a certificate (empty when it has none)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.UniformResourceIdentifier)

"""Who is calling: the SPIFFE URI SAN of the peer's certificate, never metadata.

The TLS handshake has already checked the chain, but the TLS library does not enforce the CA's
pathLen:0, so a certificate from a sub-CA would pass it; we also require that the peer's leaf
was signed by the home's CA itself, is not a CA, and was issued for client authentication.
"""

from __future__ import annotations

import functools

import grpc
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from privet.governance.errors import Unauthenticated
from privet.governance.identity.ca import spiffe_ids_of
from privet.governance.identity.principals import Principal
from privet.governance.identity.spiffe import SpiffeId, parse_spiffe_id
from privet.governance.runtime import Runtime

__all__ = ["peer_spiffe_id", "caller"]


@functools.lru_cache(maxsize=16)
def _ca(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _is_client_leaf(cert: x509.Certificate) -> bool:
    """Not a CA, and issued for client authentication: what this CA issues to principals."""
    try:
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False
    except x509.ExtensionNotFound:
        pass
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.CLIENT_AUTH in usages


@functools.lru_cache(maxsize=4096)
def _spiffe_of_pem(pem: bytes, ca_pem: bytes) -> SpiffeId:
    cert = x509.load_pem_x509_certificate(pem)
    try:
        cert.verify_directly_issued_by(_ca(ca_pem))
    except Exception as exc:
        raise Unauthenticated("client certificate is not issued directly by this Privet CA") from exc
    if not _is_client_leaf(cert):
        raise Unauthenticated("client certificate must be a leaf (not a CA) for client authentication")
    uris = spiffe_ids_of(cert)
    if len(uris) != 1:
        raise Unauthenticated("client certificate must carry exactly one URI SAN, its SPIFFE id")
    return parse_spiffe_id(uris[0])


def peer_spiffe_id(context: grpc.ServicerContext, ca_pem: bytes) -> SpiffeId:
    """The caller's SPIFFE id from its TLS certificate, issued directly by `ca_pem`."""
    pems = context.auth_context().get("x509_pem_cert")
    if not pems:
        raise Unauthenticated("no client certificate")
    return _spiffe_of_pem(pems[0], ca_pem)


def caller(context: grpc.ServicerContext, runtime: Runtime) -> Principal:
    return runtime.policies.engine.directory.resolve(peer_spiffe_id(context, runtime.ca_pem))

"""Who is calling: the SPIFFE URI SAN of the peer's verified certificate, never metadata."""

from __future__ import annotations

import functools

import grpc
from cryptography import x509

from governance.errors import Unauthenticated
from governance.identity.ca import spiffe_ids_of
from governance.identity.principals import Directory, Principal
from governance.identity.spiffe import SpiffeId, parse_spiffe_id

__all__ = ["peer_spiffe_id", "caller"]


@functools.lru_cache(maxsize=4096)
def _spiffe_of_pem(pem: bytes) -> SpiffeId:
    cert = x509.load_pem_x509_certificate(pem)
    uris = [u for u in spiffe_ids_of(cert) if u.startswith("spiffe://")]
    if len(uris) != 1:
        raise Unauthenticated("client certificate must carry exactly one SPIFFE URI SAN")
    return parse_spiffe_id(uris[0])


def peer_spiffe_id(context: grpc.ServicerContext) -> SpiffeId:
    """The caller's SPIFFE id from the TLS peer certificate (already verified against our CA)."""
    auth = context.auth_context()
    pems = auth.get("x509_pem_cert")
    if not pems:
        raise Unauthenticated("no client certificate")
    return _spiffe_of_pem(pems[0])


def caller(context: grpc.ServicerContext, directory: Directory) -> Principal:
    return directory.resolve(peer_spiffe_id(context))

"""Proof, at every server start, that the server refuses TLS 1.2.

gRPC Python has no minimum-version setting. Privet pins the cipher suites that TLS 1.2 could
use (`privet/__init__.py`), but gRPC reads them once, when it is first imported: a process
that imported grpc before Privet serves TLS 1.2. Rather than trusting the import order, the
server is asked: a TLS 1.2 handshake, made with the service's own certificate as the client's
(so that only the protocol version can fail it), must not complete.
"""

from __future__ import annotations

import pathlib
import socket
import ssl

__all__ = ["TLS12Accepted", "require_tls13_only"]


class TLS12Accepted(RuntimeError):
    """The server completed a TLS 1.2 handshake: it must not serve."""


def _probe_host(address: str) -> str:
    host = address.rsplit(":", 1)[0].strip("[]")
    if host in ("", "0.0.0.0", "*"):
        return "127.0.0.1"
    return "::1" if host == "::" else host


def require_tls13_only(address: str, port: int, *, cert: pathlib.Path, key: pathlib.Path, timeout: float = 5.0) -> None:
    """Raise `TLS12Accepted` if the server listening on `address` (its `port` as bound)
    completes a TLS 1.2 handshake. A refused handshake, of whatever kind, passes."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # only the protocol version is under test, not the peer
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection((_probe_host(address), port), timeout=timeout) as raw:
        try:
            with ctx.wrap_socket(raw) as tls:
                version = tls.version()
        except (ssl.SSLError, ConnectionError, TimeoutError):
            return
    raise TLS12Accepted(f"the server on {address} completed a {version} handshake: grpc was imported before privet, "
                        "so TLS 1.2 could not be disabled; import privet before grpc")

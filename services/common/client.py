"""Client channels over mutual TLS, acting as one principal (its pki/<name>.pem/.key)."""

from __future__ import annotations

import grpc

from privet.governance.config import Home
from privet.governance.errors import Unauthenticated

__all__ = ["channel_credentials", "secure_channel"]


def channel_credentials(home: Home, principal: str) -> grpc.ChannelCredentials:
    cert, key = home.cert(principal), home.key(principal)
    if not home.ca_cert.exists():
        raise Unauthenticated(f"{home.root} is not a Privet home: run `privet init` (or pass --home)")
    if not key.exists():
        raise Unauthenticated(f"no identity for {principal!r} in {home.pki} (run `privet init --principal {principal} --role ...`)")
    return grpc.ssl_channel_credentials(root_certificates=home.ca_cert.read_bytes(), private_key=key.read_bytes(), certificate_chain=cert.read_bytes())


def secure_channel(home: Home, principal: str, address: str, *, max_message_bytes: int | None = None) -> grpc.Channel:
    limit = max_message_bytes or home.settings().max_message_bytes
    return grpc.secure_channel(
        address,
        channel_credentials(home, principal),
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
    )

"""Shared server and client plumbing for every Privet service."""

import os

# TLS 1.3 only. gRPC Python exposes no minimum-version setting, but TLS 1.3 suites are not
# configurable and TLS 1.2 needs a suite from this list: the only one allowed here requires an
# RSA certificate, and every Privet certificate is ECDSA, so a TLS 1.2 handshake always fails.
# (gRPC reads this when it creates credentials; tests/integration/test_transport.py checks it.)
os.environ["GRPC_SSL_CIPHER_SUITES"] = "ECDHE-RSA-AES128-GCM-SHA256"

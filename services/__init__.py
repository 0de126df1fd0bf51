"""Privet's gRPC services. Importing this package pins the TLS policy, so import it before grpc."""

import os
import sys

# TLS 1.3 only. gRPC Python exposes no minimum-version setting, but TLS 1.3 suites are not
# configurable, and TLS 1.2 needs a suite from this list: the only one allowed requires an RSA
# certificate, and every Privet certificate is ECDSA, so a TLS 1.2 handshake always fails.
# gRPC reads the variable once, when it is first imported, hence here and hence the check.
TLS13_ONLY_SUITES = "ECDHE-RSA-AES128-GCM-SHA256"
TLS13_ENFORCED = "grpc" not in sys.modules or os.environ.get("GRPC_SSL_CIPHER_SUITES") == TLS13_ONLY_SUITES
os.environ["GRPC_SSL_CIPHER_SUITES"] = TLS13_ONLY_SUITES

"""Privet: a governance- and privacy-aware model platform.

One import name. `privet.governance` holds the rules, `privet.services` the gRPC services and
the command line, `privet.policies` the default Cedar policies, and `privet.<area>.v1` /
`privet.kserve.v2` the generated protocol code.

Importing any part of Privet imports this module first, and it pins gRPC's TLS policy: gRPC
Python has no minimum-version setting, but TLS 1.3 suites are not configurable and TLS 1.2
needs one from GRPC_SSL_CIPHER_SUITES. The only suite allowed here requires an RSA
certificate and every Privet certificate is ECDSA, so a TLS 1.2 handshake always fails. gRPC
reads the variable when it is imported, so a process that imported grpc before Privet cannot
be pinned; every server proves at start that it refuses TLS 1.2, and refuses to serve
otherwise (`privet.services.common.tls_probe`).
"""

import os as _os

TLS13_ONLY_SUITES = "ECDHE-RSA-AES128-GCM-SHA256"
_os.environ["GRPC_SSL_CIPHER_SUITES"] = TLS13_ONLY_SUITES
# gRPC's core logs below ERROR go to stderr beside Privet's own (a JSON log would not parse);
# an operator who wants them sets GRPC_VERBOSITY themselves.
_os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

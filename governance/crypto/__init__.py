"""Encryption at rest for model weights: the sealing recipe and the keyring behind it.

`seal_weights` / `open_weights` / `rewrap` are the whole public face; chunk framing and
key wrapping stay inside. Any integrity failure is one opaque `WeightsTampered`.
"""

from privet.governance.crypto.errors import WeightsTampered
from privet.governance.crypto.keyring import FileKeyring, KeyEncryptionKeys
from privet.governance.crypto.weights import DEFAULT_CHUNK_SIZE, SealedWeights, open_weights, rewrap, seal_weights

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FileKeyring",
    "KeyEncryptionKeys",
    "SealedWeights",
    "WeightsTampered",
    "open_weights",
    "rewrap",
    "seal_weights",
]

"""A service process fetches registered base models from the registry, into memory only.

The training service (a job's tokenizer, its worker's model) and the inference service (a
version fine-tuned from a base) install this as their fetcher (`governance.basemodels.
source`), which checks what arrives against the digest Privet recorded for the job. The
registry's ownership policy lets these two services download released bases and nothing
else of a base (policies/ownership.cedar).
"""

from __future__ import annotations

import pathlib

from privet.governance.basemodels.source import use_fetcher
from privet.governance.config import Home
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from privet.services.common.client import secure_channel

__all__ = ["fetch_base", "use_registry_for_bases"]

# A base of 100 M parameters is 400 MB: allow for a slow disk and a busy registry.
FETCH_TIMEOUT_S = 600


def fetch_base(home: Home, identity: str, model: str, version: int) -> bytes:
    """DownloadWeights of a base's pack, as the service `identity`."""
    with secure_channel(home, identity, home.settings().addresses["registry"]) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        request = registry_pb2.DownloadWeightsRequest(name=model, version=version)
        return b"".join(chunk.data for chunk in stub.DownloadWeights(request, timeout=FETCH_TIMEOUT_S))


def use_registry_for_bases(home: Home | str, identity: str) -> None:
    """This process fetches base models from the registry as the service `identity`."""
    resolved = home if isinstance(home, Home) else Home(pathlib.Path(home))
    use_fetcher(lambda model, version: fetch_base(resolved, identity, model, version))

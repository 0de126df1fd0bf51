"""The model registry: versions with sealed weights and facts, and policy-gated releases.

`ModelRegistry` is the whole public face; the safetensors check (`weights_format`) and the
facts the release gates decide over (`gates`) sit behind it. The rules are in
`policies/release.cedar`.
"""

from privet.governance.registry.gates import ReleaseFacts, Stage
from privet.governance.registry.registry import (
    MAX_EPSILON,
    ApprovalRecord,
    ModelRecord,
    ModelRegistry,
    VersionRecord,
    VersionSpec,
)
from privet.governance.registry.weights_format import (
    SafetensorsChecker,
    TensorInfo,
    parse_safetensors,
)

__all__ = [
    "MAX_EPSILON",
    "ApprovalRecord",
    "ModelRecord",
    "ModelRegistry",
    "ReleaseFacts",
    "SafetensorsChecker",
    "Stage",
    "TensorInfo",
    "VersionRecord",
    "VersionSpec",
    "parse_safetensors",
]

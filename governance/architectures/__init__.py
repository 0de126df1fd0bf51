"""Model architectures by name, their preprocessing, and their weights.

Tabular models (`logreg`, `mlp`) take the float32 matrix a `TabularPreprocessor` makes;
`text-minilm` takes the token ids a `TextPreprocessor` makes (`input_kind(arch)` says
which). Weights travel as safetensors bytes, and a model is rebuilt from its `ModelSpec`
metadata plus those bytes.
"""

from collections.abc import Mapping
from typing import Any

from privet.governance.architectures.models import (
    ModelSpec,
    architectures,
    build_model,
    export_weights,
    input_kind,
    load_model,
    unwrap_model,
)
from privet.governance.architectures.tabular import MAX_CATEGORIES, ClassLabels, TabularPreprocessor
from privet.governance.architectures.text import TextPreprocessor

__all__ = [
    "MAX_CATEGORIES",
    "ClassLabels",
    "ModelSpec",
    "TabularPreprocessor",
    "TextPreprocessor",
    "architectures",
    "build_model",
    "export_weights",
    "input_kind",
    "load_model",
    "preprocessor_from_metadata",
    "unwrap_model",
]


def preprocessor_from_metadata(metadata: Mapping[str, Any]) -> TabularPreprocessor | TextPreprocessor:
    """The preprocessor that `to_metadata()` described: text when its `kind` is "text",
    tabular otherwise. Raises InvalidArgument("preprocessing") when it is malformed."""
    if isinstance(metadata, Mapping) and metadata.get("kind") == "text":
        return TextPreprocessor.from_metadata(metadata)
    return TabularPreprocessor.from_metadata(metadata)

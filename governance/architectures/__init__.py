"""Model architectures by name, their preprocessing, and their weights.

Tabular models (`logreg`, `mlp`) take the float32 matrix a `TabularPreprocessor` makes;
`text-minilm` takes the token ids a `TextPreprocessor` makes (`input_kind(arch)` says
which). Weights travel as safetensors bytes, and a model is rebuilt from its `ModelSpec`
metadata plus those bytes.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from privet.governance.architectures.finetuned import FINE_TUNED_ARCH, BaseTextPreprocessor
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

TextInputs = TextPreprocessor | BaseTextPreprocessor

__all__ = [
    "FINE_TUNED_ARCH",
    "MAX_CATEGORIES",
    "BaseTextPreprocessor",
    "TextInputs",
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
    "text_preprocessor_for",
    "unwrap_model",
]


def preprocessor_from_metadata(metadata: Mapping[str, Any]) -> TabularPreprocessor | TextInputs:
    """The preprocessor that `to_metadata()` described: by its `kind`, text (MiniLM's
    tokenizer), base-text (a registered base's tokenizer), tabular otherwise. Raises
    InvalidArgument("preprocessing") when it is malformed."""
    kind = metadata.get("kind") if isinstance(metadata, Mapping) else None
    if kind == "text":
        return TextPreprocessor.from_metadata(metadata)
    if kind == BaseTextPreprocessor.KIND:
        return BaseTextPreprocessor.from_metadata(metadata)
    return TabularPreprocessor.from_metadata(metadata)


def text_preprocessor_for(arch: str, hparams: Mapping[str, Any], table: pa.Table, features: Sequence[str]) -> TextInputs:
    """The tokenizer a text architecture trains and serves with, fitted to `table`'s one text
    column: the base's own for a fine-tuned transformer, MiniLM's otherwise."""
    if arch == FINE_TUNED_ARCH:
        return BaseTextPreprocessor.fit(table, features, base=hparams["base"], max_length=int(hparams.get("max_length", 128)))
    return TextPreprocessor.fit(table, features)

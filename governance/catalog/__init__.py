"""The model catalog: architectures by name, their preprocessing, and their weights.

Tabular models (`logreg`, `mlp`) take the float32 matrix a `TabularPreprocessor` makes;
weights travel as safetensors bytes, and a model is rebuilt from its `ModelSpec`
metadata plus those bytes.
"""

from governance.catalog.models import (
    ModelSpec,
    architectures,
    build_model,
    export_weights,
    load_model,
    unwrap_model,
)
from governance.catalog.tabular import MAX_CATEGORIES, ClassLabels, TabularPreprocessor

__all__ = [
    "MAX_CATEGORIES",
    "ClassLabels",
    "ModelSpec",
    "TabularPreprocessor",
    "architectures",
    "build_model",
    "export_weights",
    "load_model",
    "unwrap_model",
]

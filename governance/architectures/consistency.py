"""Whether a version's metadata and its weights agree, checked at registration.

Inference rebuilds a model from what the uploader wrote (`preprocessing_json`: the
architecture's spec, the preprocessor, the labels) and then loads the weights into it.
Unchecked, that metadata decides what inference allocates: a released version claiming
`n_features = 1e6` made every request rebuild a 400 MB model, fail, and try again. So the
registry refuses a version whose metadata does not describe its weights exactly, before
anything is stored: the module is built on PyTorch's `meta` device (shapes and dtypes, no
memory), its exported tensor names, shapes and dtypes must equal those in the safetensors
header, the preprocessor must produce exactly `n_features` columns, and the labels must
have `n_classes` classes.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from privet.governance.architectures import preprocessor_from_metadata
from privet.governance.architectures.finetuned import is_causal_lm
from privet.governance.architectures.models import ModelSpec, _exported_state, architectures
from privet.governance.architectures.tabular import ClassLabels
from privet.governance.errors import InvalidArgument

__all__ = ["check_metadata_matches_weights"]

FIELD = "metadata.preprocessing_json"

# safetensors' dtype names for the torch dtypes a catalog model exports.
_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32",
           torch.uint8: "U8", torch.bool: "BOOL"}


def _expected_tensors(spec: ModelSpec) -> dict[str, tuple[tuple[int, ...], str]]:
    """Each exported tensor's (shape, safetensors dtype), from a module built on `meta`."""
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")  # a pre-trained part "loads" into meta tensors as a no-op
        module = spec.build()
    return {name: (tuple(t.shape), _DTYPES.get(t.dtype, str(t.dtype))) for name, t in _exported_state(module).items()}


def check_metadata_matches_weights(architecture: str, preprocessing_json: str, tensors: Sequence[Any], inputs: Sequence[str] = ()) -> None:
    """InvalidArgument (`metadata.preprocessing_json`, or `metadata.architecture`) unless
    the metadata of a catalog architecture describes `tensors` (the safetensors header's
    name, dtype, shape) exactly, and the preprocessor reads exactly the declared `inputs`. Nothing to check for an architecture outside the catalog
    (inference cannot load those) or a version without preprocessing metadata."""
    if architecture not in architectures() or not preprocessing_json:
        return
    meta = json.loads(preprocessing_json)
    if not isinstance(meta, dict) or not all(isinstance(meta.get(k), dict) for k in ("model", "preprocessor")):
        raise InvalidArgument(FIELD, "must be an object with \"model\", \"preprocessor\" and \"labels\" objects")
    spec = ModelSpec.from_metadata(meta["model"])
    if spec.arch != architecture:
        raise InvalidArgument("metadata.architecture", f"{architecture!r}, but preprocessing_json describes {spec.arch!r}")
    # A causal language model has no labels: its outputs are text over its vocabulary.
    causal = is_causal_lm(spec.arch, spec.hparams)
    if not causal and not isinstance(meta.get("labels"), dict):
        raise InvalidArgument(FIELD, "must be an object with \"model\", \"preprocessor\" and \"labels\" objects")
    try:
        preprocessor = preprocessor_from_metadata(meta["preprocessor"])
        labels = None if causal else ClassLabels.from_metadata(meta["labels"])
    except InvalidArgument as exc:
        raise InvalidArgument(FIELD, exc.message) from None
    if inputs and list(inputs) != list(preprocessor.features):
        raise InvalidArgument("metadata.inputs", f"{list(inputs)}, but the preprocessor reads {list(preprocessor.features)}")
    if preprocessor.n_features != spec.n_features:
        raise InvalidArgument(FIELD, f"the preprocessor makes {preprocessor.n_features} features, the model takes {spec.n_features}")
    if labels is not None and len(labels.classes) != spec.n_classes:
        raise InvalidArgument(FIELD, f"the labels have {len(labels.classes)} classes, the model {spec.n_classes}")
    expected = _expected_tensors(spec)
    got = {t.name: (tuple(t.shape), t.dtype) for t in tensors}
    if set(got) != set(expected):
        missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
        raise InvalidArgument(FIELD, f"the weights are not a {architecture} of this shape: missing tensors {missing[:5]}, unexpected {extra[:5]}")
    for name in sorted(expected):
        if got[name] != expected[name]:
            raise InvalidArgument(FIELD, f"tensor {name} is {got[name][1]} {list(got[name][0])}, the metadata implies {expected[name][1]} {list(expected[name][0])}")

"""Model architectures by name, and their weights as safetensors (never pickle).

Every architecture here trains under Opacus: no BatchNorm (it mixes samples, which
per-sample clipping cannot bound), only layers with per-sample gradient support.

`ModelSpec` is what a model is without its weights: architecture name, input width,
number of classes and hyperparameters. Its `to_metadata()` travels with the weights so
`load_model` rebuilds the same module before loading them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load as _load_safetensors
from safetensors.torch import save as _save_safetensors
from torch import nn

from privet.governance.errors import InvalidArgument

__all__ = [
    "ModelSpec",
    "architectures",
    "build_model",
    "export_weights",
    "input_kind",
    "load_model",
    "unwrap_model",
]


@dataclass(frozen=True)
class _Architecture:
    name: str
    description: str
    defaults: Mapping[str, Any]
    build: Callable[..., nn.Module]
    check: Callable[[Mapping[str, Any]], dict[str, Any]]
    # "features": a float32 matrix (rows × features); "tokens": int64 token ids (rows × tokens).
    input_kind: str = "features"


_REGISTRY: dict[str, _Architecture] = {}


def _register(arch: _Architecture) -> None:
    if arch.name in _REGISTRY:
        raise ValueError(f"architecture {arch.name!r} registered twice")
    _REGISTRY[arch.name] = arch


def architectures() -> tuple[str, ...]:
    """Names of the architectures `build_model` accepts."""
    return tuple(sorted(_REGISTRY))


def input_kind(arch: str) -> str:
    """What `arch` takes: "features" (float32 rows × features, e.g. from a
    TabularPreprocessor) or "tokens" (int64 token ids rows × tokens, from a
    TextPreprocessor). Raises InvalidArgument("arch") for an unknown architecture."""
    entry = _REGISTRY.get(arch)
    if entry is None:
        raise InvalidArgument("arch", f"unknown architecture {arch!r}; known: {', '.join(architectures())}")
    return entry.input_kind


# -- logreg --------------------------------------------------------------------------


def _check_logreg(hparams: Mapping[str, Any]) -> dict[str, Any]:
    return {}


def _build_logreg(n_features: int, n_classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(n_features, n_classes))


_register(
    _Architecture(
        name="logreg",
        description="multinomial logistic regression: one linear layer to class logits",
        defaults={},
        build=_build_logreg,
        check=_check_logreg,
    )
)


# -- mlp -----------------------------------------------------------------------------


def _check_mlp(hparams: Mapping[str, Any]) -> dict[str, Any]:
    hidden = hparams["hidden"]
    if isinstance(hidden, (int, str)) or not all(isinstance(h, int) and not isinstance(h, bool) for h in hidden):
        raise InvalidArgument("hparams.hidden", "a list of layer widths (integers)")
    hidden = [int(h) for h in hidden]
    if not hidden or any(h < 1 or h > 65536 for h in hidden):
        raise InvalidArgument("hparams.hidden", "one or more widths between 1 and 65536")
    dropout = hparams["dropout"]
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= float(dropout) < 1.0:
        raise InvalidArgument("hparams.dropout", "a probability in [0, 1)")
    layer_norm = hparams["layer_norm"]
    if not isinstance(layer_norm, bool):
        raise InvalidArgument("hparams.layer_norm", "true or false")
    return {"hidden": hidden, "dropout": float(dropout), "layer_norm": layer_norm}


def _build_mlp(n_features: int, n_classes: int, *, hidden: list[int], dropout: float, layer_norm: bool) -> nn.Module:
    layers: list[nn.Module] = []
    width = n_features
    for h in hidden:
        layers.append(nn.Linear(width, h))
        # LayerNorm normalises each sample on its own, so it is safe under DP-SGD
        # where BatchNorm is not.
        if layer_norm:
            layers.append(nn.LayerNorm(h))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


_register(
    _Architecture(
        name="mlp",
        description="multilayer perceptron: Linear [LayerNorm] ReLU [Dropout] blocks, then class logits",
        defaults={"hidden": [128, 128], "dropout": 0.0, "layer_norm": False},
        build=_build_mlp,
        check=_check_mlp,
    )
)


# -- the public recipe -----------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """An architecture with its shape and hyperparameters, validated.

    Use `ModelSpec.create(...)`: it fills defaults and checks every value, raising
    InvalidArgument naming `arch`, `n_features`, `n_classes` or `hparams.<name>`.
    """

    arch: str
    n_features: int
    n_classes: int
    hparams: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, arch: str, n_features: int, n_classes: int, **hparams: Any) -> ModelSpec:
        entry = _REGISTRY.get(arch)
        if entry is None:
            raise InvalidArgument("arch", f"unknown architecture {arch!r}; known: {', '.join(architectures())}")
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
            raise InvalidArgument("n_features", "a positive integer")
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise InvalidArgument("n_classes", "an integer of at least 2")
        unknown = sorted(set(hparams) - set(entry.defaults))
        if unknown:
            raise InvalidArgument(f"hparams.{unknown[0]}", f"not a hyperparameter of {arch}")
        merged = {**entry.defaults, **hparams}
        return cls(arch, n_features, n_classes, entry.check(merged))

    def build(self) -> nn.Module:
        """A freshly initialised module (uses torch's global RNG for the init)."""
        return _REGISTRY[self.arch].build(self.n_features, self.n_classes, **self.hparams)

    def to_metadata(self) -> dict[str, Any]:
        """JSON-serialisable; `from_metadata` gives back an equal spec."""
        return {
            "arch": self.arch,
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "hparams": dict(self.hparams),
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> ModelSpec:
        try:
            return cls.create(
                metadata["arch"], int(metadata["n_features"]), int(metadata["n_classes"]), **dict(metadata["hparams"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument("metadata", f"malformed model metadata ({exc!r})") from None


def build_model(arch: str, n_features: int, n_classes: int, **hparams: Any) -> nn.Module:
    """A new, randomly initialised model of architecture `arch` (see `architectures()`).

    Raises InvalidArgument naming the field for an unknown architecture, bad shape or
    bad/unknown hyperparameter.
    """
    return ModelSpec.create(arch, n_features, n_classes, **hparams).build()


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module under Opacus's GradSampleModule (or DPDDP) wrappers."""
    while hasattr(model, "_module") and isinstance(model._module, nn.Module):
        model = model._module
    return model


def _exported_state(model: nn.Module) -> dict[str, Any]:
    """What travels as the model's weights: its whole state, or, for a model that defines
    `exported_state_dict()` (one built partly from fixed pre-trained weights that the
    rebuild takes from elsewhere), only the part it trains."""
    exported = getattr(model, "exported_state_dict", None)
    return dict(exported()) if callable(exported) else dict(model.state_dict())


def export_weights(model: nn.Module) -> bytes:
    """The model's trained parameters and buffers as safetensors bytes (on CPU).

    Opacus wrappers are looked through, so the keys are those of the plain module. For
    `text-minilm` only the fine-tuned top layers and the head are exported: the frozen
    encoder is rebuilt from its package, checked by digest.
    """
    state = _exported_state(unwrap_model(model))
    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in state.items()}
    return _save_safetensors(tensors)


def load_model(arch: str, metadata: Mapping[str, Any], weights: bytes) -> nn.Module:
    """Rebuild a model from its metadata (`ModelSpec.to_metadata()`) and safetensors bytes.

    The model is returned on CPU in eval mode. Raises InvalidArgument("arch") when the
    metadata names another architecture, InvalidArgument("metadata") when it is malformed,
    InvalidArgument("weights") when the bytes are not safetensors or their tensors do
    not match the architecture exactly (missing, extra, or differently shaped).
    """
    spec = ModelSpec.from_metadata(metadata)
    if spec.arch != arch:
        raise InvalidArgument("arch", f"metadata describes {spec.arch!r}, not {arch!r}")
    try:
        tensors = _load_safetensors(bytes(weights))
    except (SafetensorError, ValueError, TypeError) as exc:
        raise InvalidArgument("weights", f"not a safetensors file ({exc})") from None
    model = spec.build()
    expected = _exported_state(model)
    if set(tensors) != set(expected):
        missing = sorted(set(expected) - set(tensors))
        extra = sorted(set(tensors) - set(expected))
        raise InvalidArgument("weights", f"tensor names do not match {arch}: missing {missing}, unexpected {extra}")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape or tensor.dtype != expected[name].dtype:
            raise InvalidArgument(
                "weights",
                f"{name}: {tuple(tensor.shape)} {tensor.dtype}, expected "
                f"{tuple(expected[name].shape)} {expected[name].dtype}",
            )
    load_exported = getattr(model, "load_exported", None)
    if callable(load_exported):
        # Its exported names are its own (stable across library versions), not state_dict's.
        load_exported(tensors)
    else:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        if unexpected or set(missing) & set(expected):  # never expected: the names were checked above
            raise InvalidArgument("weights", f"tensor names do not match {arch}")
    model.eval()
    return model

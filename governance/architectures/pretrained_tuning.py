"""What of a pre-trained transformer is trained: `TuneSpec`, and `apply_tuning` that freezes
everything else.

Three modes, all cheap enough for DP-SGD (per-sample clipping touches only what trains):

- ``lora``: low-rank adapters (peft) on the named linear layers of the pre-trained body,
  plus the task head (for causal LM the LM head stays frozen: it is pre-trained);
- ``head``: only the task head (the modules outside the model's `base_model_prefix`);
- ``last-k``: the last k transformer blocks, whatever the body holds after them (final
  norm, BERT's pooler), and the head.

`apply_tuning` returns the trained parameters under *stable* names: the plain Hugging Face
task model's own parameter names, with peft's adapter name dropped from LoRA weights
(``…query.lora_A.weight``), so exported weights do not depend on peft's wrapper layout.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn

from privet.governance.errors import InvalidArgument

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = ["DEFAULT_LORA_TARGETS", "TASKS", "TUNES", "TuneSpec", "apply_tuning", "head_parameter_names"]

TASKS = ("sequence-classification", "causal-lm")
TUNES = ("lora", "head", "last-k")
_MAX_RANK = 256
_MAX_TARGETS = 64
_TARGET = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")

_BERT = ("query", "key", "value", "dense")
_GPT2 = ("c_attn", "c_proj", "c_fc")
_LLAMA = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: LoRA targets (module-name suffixes) per `config["model_type"]` when none are named.
DEFAULT_LORA_TARGETS: Mapping[str, tuple[str, ...]] = {
    "bert": _BERT,
    "roberta": _BERT,
    "xlm-roberta": _BERT,
    "gpt2": _GPT2,
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
}


def _positive_int(value: Any, field: str, upper: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= upper:
        raise InvalidArgument(field, f"an integer in 1..{upper}")
    return value


@dataclass(frozen=True)
class TuneSpec:
    """The task and what trains. Validated on construction: raises InvalidArgument naming
    ``hparams.<field>``. `lora_targets` None means the family's default (see
    `DEFAULT_LORA_TARGETS`); whether named targets exist is checked when the model is built."""

    task: str
    tune: str
    lora_rank: int = 8
    lora_alpha: float = 16
    lora_targets: tuple[str, ...] | None = None
    last_k: int = 1

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InvalidArgument("hparams.task", f"one of {', '.join(TASKS)}")
        if self.tune not in TUNES:
            raise InvalidArgument("hparams.tune", f"one of {', '.join(TUNES)}")
        _positive_int(self.lora_rank, "hparams.lora_rank", _MAX_RANK)
        alpha = self.lora_alpha
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < float(alpha) <= 1e6:
            raise InvalidArgument("hparams.lora_alpha", "a positive number")
        _positive_int(self.last_k, "hparams.last_k", 1024)
        targets = self.lora_targets
        if targets is not None:
            if isinstance(targets, str) or not isinstance(targets, Sequence):
                raise InvalidArgument("hparams.lora_targets", "a list of module name suffixes")
            if not 1 <= len(targets) <= _MAX_TARGETS or not all(isinstance(t, str) and _TARGET.match(t) for t in targets):
                raise InvalidArgument("hparams.lora_targets", f"1..{_MAX_TARGETS} module name suffixes such as 'query' or 'attention.self.query'")
            # Tuples keep the spec hashable and immutable whatever sequence came in.
            object.__setattr__(self, "lora_targets", tuple(targets))
        object.__setattr__(self, "lora_alpha", float(alpha))

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict; `from_json` gives back an equal spec."""
        return {
            "task": self.task,
            "tune": self.tune,
            "lora_rank": self.lora_rank,
            "lora_alpha": self.lora_alpha,
            "lora_targets": list(self.lora_targets) if self.lora_targets is not None else None,
            "last_k": self.last_k,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TuneSpec:
        if not isinstance(data, Mapping):
            raise InvalidArgument("hparams", "a JSON object")
        known = {"task", "tune", "lora_rank", "lora_alpha", "lora_targets", "last_k"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidArgument(f"hparams.{unknown[0]}", "not a tuning setting")
        for required in ("task", "tune"):
            if required not in data:
                raise InvalidArgument(f"hparams.{required}", "required")
        return cls(**dict(data))

    def targets_for(self, model_type: str) -> tuple[str, ...]:
        """The LoRA target suffixes for a model family. Raises InvalidArgument when none
        are named and the family has no default."""
        if self.lora_targets is not None:
            return self.lora_targets
        if model_type not in DEFAULT_LORA_TARGETS:
            raise InvalidArgument("hparams.lora_targets", f"no default for model_type {model_type!r}: name the linear layers to adapt")
        return DEFAULT_LORA_TARGETS[model_type]


# -- the parts of a Hugging Face task model -------------------------------------------------


def head_parameter_names(model: PreTrainedModel) -> set[str]:
    """The task head: parameters outside the pre-trained body (`base_model_prefix`), e.g.
    BERT's ``classifier.*``, Llama's ``score.weight`` or a causal LM's ``lm_head.weight``."""
    prefix = f"{model.base_model_prefix}."
    return {name for name, _ in model.named_parameters(remove_duplicate=False) if not name.startswith(prefix)}


def _blocks(body: nn.Module, layers: int) -> tuple[str, nn.ModuleList]:
    """The body's child that holds the transformer blocks (BERT's ``encoder``, GPT-2's ``h``,
    Llama's ``layers``) and the block list itself: the ModuleList as long as the config's
    layer count."""
    for child_name, child in body.named_children():
        for module in [child, *child.modules()]:
            if isinstance(module, nn.ModuleList) and len(module) == layers:
                return child_name, module
    raise InvalidArgument("hparams.tune", f"last-k: no list of {layers} transformer blocks found in {type(body).__name__}")


def _last_k_modules(model: PreTrainedModel, k: int) -> list[nn.Module]:
    body = model.base_model
    layers = int(model.config.num_hidden_layers)
    if k > layers:
        raise InvalidArgument("hparams.last_k", f"at most {layers}: the model has {layers} transformer blocks")
    holder, blocks = _blocks(body, layers)
    # Children registered after the block holder run after the blocks (final norm, pooler):
    # trained too, since a frozen layer on top would stand between the blocks and the head.
    children = [name for name, _ in body.named_children()]
    tail = [getattr(body, name) for name in children[children.index(holder) + 1 :]]
    return [*blocks[layers - k :], *tail]


def _lora_target_names(model: PreTrainedModel, suffixes: Sequence[str]) -> list[str]:
    """Full names of the body's linear layers that end in one of `suffixes`. Every suffix
    must match at least one; the head is never adapted (it trains in full)."""
    from transformers.pytorch_utils import Conv1D

    prefix = f"{model.base_model_prefix}."
    names: list[str] = []
    for suffix in suffixes:
        matched = [
            name
            for name, module in model.named_modules()
            if name.startswith(prefix) and (name == suffix or name.endswith(f".{suffix}"))
        ]
        if not matched:
            raise InvalidArgument("hparams.lora_targets", f"{suffix!r} matches no module of the pre-trained model")
        for name in matched:
            module = model.get_submodule(name)
            # Linear and GPT-2's Conv1D: peft adapts both with nn.Linear factors, which
            # Opacus clips per sample natively; other layer kinds are not offered.
            if not isinstance(module, (nn.Linear, Conv1D)):
                raise InvalidArgument("hparams.lora_targets", f"{name} is a {type(module).__name__}, not a linear layer")
        names.extend(n for n in matched if n not in names)
    return names


def _apply_lora(model: PreTrainedModel, spec: TuneSpec, model_type: str) -> None:
    from peft import LoraConfig, inject_adapter_in_model
    from transformers.pytorch_utils import Conv1D

    names = _lora_target_names(model, spec.targets_for(model_type))
    # peft annotates lora_alpha as int but scales by alpha / r in floating point.
    alpha: Any = spec.lora_alpha
    config = LoraConfig(
        r=spec.lora_rank,
        lora_alpha=alpha,
        # Full names: peft matches a listed name as a suffix, so a bare "dense" would
        # also catch a head's dense layer (RoBERTa's classifier has one).
        target_modules=names,
        lora_dropout=0.0,
        bias="none",
        # GPT-2's Conv1D stores its weight transposed; peft must know (it would otherwise
        # flip the setting itself, with a warning, per layer).
        fan_in_fan_out=isinstance(model.get_submodule(names[0]), Conv1D),
    )
    # In place, without peft's PeftModel wrapper: the task model keeps its own forward
    # signature and parameter names. peft freezes every non-adapter parameter.
    inject_adapter_in_model(config, model)


def _stable_name(name: str) -> str:
    """peft's ``….lora_A.default.weight`` → ``….lora_A.weight`` (one adapter, so its name
    carries nothing)."""
    return re.sub(r"\.(lora_[AB])\.default\.", r".\1.", name)


def apply_tuning(model: PreTrainedModel, spec: TuneSpec, model_type: str) -> dict[str, str]:
    """Freeze `model` (a Hugging Face task model) except what `spec` trains, adding LoRA
    adapters in ``lora`` mode. Returns stable name → the parameter's name in `model`, for
    exactly the trained parameters. Raises InvalidArgument naming ``hparams.<field>``."""
    head = head_parameter_names(model)
    if spec.tune == "lora":
        _apply_lora(model, spec, model_type)
    for p in model.parameters():
        p.requires_grad_(False)
    trained: list[nn.Module] = []
    if spec.tune == "last-k":
        trained = _last_k_modules(model, spec.last_k)
    for module in trained:
        for p in module.parameters():
            p.requires_grad_(True)
    for name, p in model.named_parameters(remove_duplicate=False):
        if ".lora_A." in name or ".lora_B." in name:
            p.requires_grad_(True)
    # The head trains in every mode but causal LM's LoRA, where it is the pre-trained LM head.
    if not (spec.tune == "lora" and spec.task == "causal-lm"):
        for name, p in model.named_parameters(remove_duplicate=False):
            if name in head:
                p.requires_grad_(True)
    return {_stable_name(name): name for name, p in model.named_parameters() if p.requires_grad}

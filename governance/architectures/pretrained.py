"""A user's pre-trained Hugging Face transformer (BERT/RoBERTa/GPT-2/Llama families), made
into a model Privet trains under DP-SGD.

`build_model(config, tune, n_classes, base_state)` builds the task model from config.json
alone (`AutoConfig.for_model` + `from_config`: no hub, no remote code), loads the user's
pre-trained weights into it, and freezes all but what `tune` trains (see
`pretrained_tuning`). The result, `PretrainedModel`, takes only int64 token ids, as
Privet's loop feeds, and exports only its trained tensors: the frozen body is public
pre-trained weights that a rebuild takes from the base files again.

Weights load strictly: every base tensor must land in the task model with its shape, and
only the new task head may be missing. Tensors the architecture's standard pre-training
heads hold (BERT's pooler for a RoBERTa classifier, a causal LM's ``lm_head`` for a Llama
classifier, BERT's MLM head) are recognised and dropped; anything else is refused.

Nothing is registered in the catalog here: its `build(n_features, n_classes, **hparams)`
has no place for base weights, which come from verified base files; the catalog entry is
the code that fetches and checks those files and calls `build_model` with them. The
catalog's `load_model` must rebuild through `load_exported` (the exported names are not
the wrapper's own state-dict names).
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from privet.governance.architectures.pretrained_tuning import TuneSpec, apply_tuning, head_parameter_names
from privet.governance.errors import InvalidArgument

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = ["ATTN_IMPLEMENTATION", "PretrainedModel", "build_model", "load_config"]

#: Opacus computes per-sample gradients from the inputs and output gradients of the
#: trained layers, so the attention kernel only has to be an ordinary autograd function;
#: SDPA is, and is faster and leaner than eager. Tests: the DP parity tests run on SDPA
#: (hooks and ghost), and SDPA's logits equal eager's.
ATTN_IMPLEMENTATION = "sdpa"
_MAX_CLASSES = 65536


def load_config(config: Mapping[str, Any]) -> Any:
    """config.json as a transformers config object. Raises InvalidArgument("hparams.base")
    for remote code (`auto_map`), quantization, or a model type transformers does not know."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is first imported
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if not isinstance(config, Mapping):
        raise InvalidArgument("hparams.base", "config.json must be a JSON object")
    if "auto_map" in config:
        raise InvalidArgument("hparams.base", "config.json names custom code (auto_map); only built-in architectures run here")
    if config.get("quantization_config") is not None:
        raise InvalidArgument("hparams.base", "quantized checkpoints are not supported")
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        raise InvalidArgument("hparams.base", f"unknown model_type {model_type!r}")
    fields = {k: v for k, v in config.items() if k not in ("model_type", "_attn_implementation", "attn_implementation")}
    try:
        return AutoConfig.for_model(model_type, **fields)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument("hparams.base", f"config.json does not describe a {model_type} model ({exc})") from None


def _pad_id(hf_config: Any, pad_id: int | None) -> int:
    """The given pad id, else config.json's pad token, else its (first) eos token."""
    chosen: Any = pad_id if pad_id is not None else getattr(hf_config, "pad_token_id", None)
    if chosen is None:
        eos = getattr(hf_config, "eos_token_id", None)
        chosen = eos[0] if isinstance(eos, (list, tuple)) and eos else eos
    vocab = getattr(hf_config, "vocab_size", None)
    if isinstance(chosen, bool) or not isinstance(chosen, int) or not isinstance(vocab, int) or not 0 <= chosen < vocab:
        raise InvalidArgument("hparams.base", f"no usable pad id (got {chosen!r}): config.json names no pad or eos token in its vocabulary")
    return chosen


def _auto_class(hf_config: Any, task: str) -> Any:
    """transformers' Auto class for `task`, if it has a model of that kind for the config."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    auto = AutoModelForCausalLM if task == "causal-lm" else AutoModelForSequenceClassification
    if type(hf_config) not in auto._model_mapping:
        raise InvalidArgument("hparams.task", f"transformers has no {task} model for {hf_config.model_type}")
    return auto


def _task_model(hf_config: Any, task: str, n_classes: int | None) -> PreTrainedModel:
    auto = _auto_class(hf_config, task)
    if task == "sequence-classification":
        hf_config.num_labels = n_classes
        hf_config.problem_type = "single_label_classification"
    try:
        model: PreTrainedModel = auto.from_config(hf_config, dtype=torch.float32, attn_implementation=ATTN_IMPLEMENTATION)
        return model
    except (ValueError, TypeError, AttributeError, KeyError) as exc:  # e.g. a width the head count does not divide
        raise InvalidArgument("hparams.base", f"config.json does not make a {hf_config.model_type} model ({exc})") from None


# -- the pre-trained weights ----------------------------------------------------------------


def _reference_shapes(hf_config: Any) -> dict[str, torch.Size]:
    """Names and shapes of every tensor the architecture's standard models hold (bare body,
    causal LM, masked LM, pre-training heads), bare and prefixed: the tensors a genuine
    checkpoint of this architecture may carry that a task model does not use. Built on the
    meta device: no memory, no initialisation cost."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForPreTraining

    shapes: dict[str, torch.Size] = {}
    for auto in (AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForPreTraining):
        try:
            with torch.device("meta"):
                reference = auto.from_config(copy.deepcopy(hf_config), dtype=torch.float32)  # type: ignore[no-untyped-call]
        except ValueError:  # the architecture has no such model
            continue
        prefix = f"{reference.base_model_prefix}."
        tensors = {**dict(reference.named_parameters(remove_duplicate=False)), **dict(reference.named_buffers(remove_duplicate=False))}
        for name, tensor in tensors.items():
            shapes[name] = tensor.shape
            shapes.setdefault(name.removeprefix(prefix), tensor.shape)
    return shapes


def _check_shape(key: str, tensor: torch.Tensor, expected: torch.Size) -> None:
    if tuple(tensor.shape) != tuple(expected):
        raise InvalidArgument("hparams.base", f"base weight {key}: shape {tuple(tensor.shape)}, the config needs {tuple(expected)}")


def _place(model: PreTrainedModel, hf_config: Any, base_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Base tensors under the task model's names. A bare body saves ``embeddings.…`` where
    the task model has ``bert.embeddings.…``: the `base_model_prefix` is added when the
    name is not already the task model's."""
    target = model.state_dict()
    prefix = model.base_model_prefix
    placed: dict[str, torch.Tensor] = {}
    leftover: dict[str, torch.Tensor] = {}
    for key, tensor in base_state.items():
        if not isinstance(tensor, torch.Tensor):
            raise InvalidArgument("hparams.base", f"base weight {key} is not a tensor")
        name = key if key in target else f"{prefix}.{key}"
        if name not in target:
            leftover[key] = tensor
            continue
        if name in placed:
            raise InvalidArgument("hparams.base", f"base weight {name} given twice (as {key})")
        _check_shape(key, tensor, target[name].shape)
        placed[name] = tensor
    if leftover:
        known = _reference_shapes(hf_config)
        for key, tensor in leftover.items():
            if key not in known:
                raise InvalidArgument("hparams.base", f"unexpected base weight {key}: not part of a {hf_config.model_type} model")
            _check_shape(key, tensor, known[key])
    return placed


def _load_base(model: PreTrainedModel, hf_config: Any, base_state: Mapping[str, torch.Tensor]) -> None:
    placed = _place(model, hf_config, base_state)
    # Tied parameters (GPT-2's LM head is its token embedding) are one tensor under two
    # names: loading either name loads both.
    params = dict(model.named_parameters(remove_duplicate=False))
    loaded = {id(params[name]) for name in placed if name in params}
    head = head_parameter_names(model)
    missing = sorted(
        n for n in model.state_dict() if n not in placed and n not in head and not (n in params and id(params[n]) in loaded)
    )
    if missing:
        raise InvalidArgument("hparams.base", f"the base weights lack {len(missing)} tensor(s) of the pre-trained model, e.g. {missing[:3]}")
    with torch.no_grad():
        _, unexpected = model.load_state_dict(placed, strict=False)
    if unexpected:  # never: every placed name is one of the model's
        raise InvalidArgument("hparams.base", f"unexpected base weights {unexpected[:3]}")


def check_base_weights(config: Mapping[str, Any], shapes: Mapping[str, Sequence[int]]) -> None:
    """InvalidArgument("hparams.base") unless tensors of these names and shapes are the
    pre-trained weights of the model config.json `config` describes, exactly as a job would
    load them: checked on the meta device (shapes only, no memory) when a base is
    registered, so that its recorded model type and config cannot contradict its weights."""
    hf_config = load_config(config)
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        model = _task_model(hf_config, "sequence-classification", 2)
        state = {name: torch.empty(tuple(shape), device="meta") for name, shape in shapes.items()}
        _load_base(model, hf_config, state)


def _lm_head(model: PreTrainedModel) -> tuple[nn.Module | None, bool]:
    """The causal LM's output layer, and whether it is tied to the token embedding."""
    head: nn.Module | None = model.get_output_embeddings()  # type: ignore[no-untyped-call]
    embeddings = model.get_input_embeddings()
    return head, head is not None and embeddings is not None and head.weight is embeddings.weight


def _untie_head(model: PreTrainedModel) -> None:
    """Give the LM head its own copy of the token embedding it is tied to (GPT-2), so the
    head can train while the embedding stays frozen."""
    head, tied = _lm_head(model)
    if head is not None and tied:
        weight = model.get_input_embeddings().weight
        assert isinstance(weight, torch.Tensor)
        head.weight = nn.Parameter(weight.detach().clone())
        # Nothing may tie them again (transformers re-ties on tie_weights() when set).
        model.config.tie_word_embeddings = False


def _lm_head_is_pretrained(model: PreTrainedModel, base_state: Mapping[str, torch.Tensor] | None) -> bool:
    head, tied = _lm_head(model)
    if head is None or tied or base_state is None:
        return True
    return any(k in base_state for k in head_parameter_names(model))


# -- the model ------------------------------------------------------------------------------


class PretrainedModel(nn.Module):
    """A Hugging Face task model behind Privet's interface: `forward(ids)` takes int64
    token ids (rows × tokens, `pad_id` = padding) and returns logits (rows × classes for
    classification, rows × tokens × vocabulary for causal LM).

    `exported_state_dict()` holds only the trained tensors, under stable names;
    `load_exported(state)` puts them back (strictly)."""

    def __init__(self, model: PreTrainedModel, *, task: str, pad_id: int, max_positions: int | None, trained: Mapping[str, str]) -> None:
        super().__init__()
        self.model = model
        self.task = task
        self.pad_id = pad_id
        self.max_positions = max_positions
        self._trained = dict(trained)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.shape[0] == 0:
            # Poisson sampling draws empty batches now and then; transformers' attention
            # cannot reshape zero rows. One row of padding runs instead and none of it is
            # returned: the loss over zero rows sends it a zero output gradient, so Opacus's
            # hooks still fire (its optimizer needs them) and add exactly nothing.
            filler = torch.full((1, max(ids.shape[1], 1)), self.pad_id, dtype=ids.dtype, device=ids.device)
            return self.forward(filler)[:0]
        keep = ids != self.pad_id
        if self.task == "sequence-classification" and ids.shape[1]:
            # Drop the columns that are padding in every row: padding is masked out, so
            # they change no class logit, and short texts padded to max_length would
            # otherwise cost as much as long ones.
            positions = torch.arange(1, ids.shape[1] + 1, device=ids.device)
            length = max(int((keep * positions).amax()), 1)
            ids, keep = ids[:, :length], keep[:, :length]
        if ids.shape[1]:
            # A row of padding only (an empty text) still attends to its first position:
            # attention over no key at all is a softmax over nothing.
            keep[:, 0] = True
        logits: torch.Tensor = self.model(input_ids=ids, attention_mask=keep.long()).logits
        return logits

    def merge_adapters(self) -> None:
        """Fold the LoRA adapters into the frozen weights they adapt, for serving only: the
        same function with one matrix product per layer instead of three (the adapter
        served apart costs a fifth more time). Export before merging, never after."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        for module in self.model.modules():
            if isinstance(module, BaseTunerLayer):
                module.merge()

    def trained_parameters(self) -> dict[str, nn.Parameter]:
        """The trained parameters, by stable name."""
        return {stable: self.model.get_parameter(name) for stable, name in self._trained.items()}

    def exported_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the trained tensors (adapters and head, or head and unfrozen blocks)."""
        return {name: p.detach() for name, p in self.trained_parameters().items()}

    def load_exported(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load what `exported_state_dict()` gave. Raises InvalidArgument("weights") when
        a tensor is missing, extra, or of another shape or dtype."""
        expected = self.trained_parameters()
        if set(state) != set(expected):
            missing = sorted(set(expected) - set(state))
            extra = sorted(set(state) - set(expected))
            raise InvalidArgument("weights", f"tensor names do not match: missing {missing[:5]}, unexpected {extra[:5]}")
        for name, tensor in state.items():
            p = expected[name]
            if not isinstance(tensor, torch.Tensor) or tensor.shape != p.shape or tensor.dtype != p.dtype:
                got = f"{tuple(tensor.shape)} {tensor.dtype}" if isinstance(tensor, torch.Tensor) else type(tensor).__name__
                raise InvalidArgument("weights", f"{name}: {got}, expected {tuple(p.shape)} {p.dtype}")
        with torch.no_grad():
            for name, tensor in state.items():
                expected[name].copy_(tensor)


def build_model(
    config: Mapping[str, Any],
    tune: TuneSpec,
    n_classes: int | None,
    base_state: Mapping[str, torch.Tensor] | None,
    *,
    pad_id: int | None = None,
) -> PretrainedModel:
    """The task model of config.json `config`, with the pre-trained weights `base_state`
    (as `XModel.save_pretrained` or `XForCausalLM.save_pretrained` saves them) and only
    what `tune` says trainable. `n_classes`: ≥ 2 for classification, None for causal LM.

    `pad_id`: the tokenizer's (`PretrainedTokenizer.pad_id`); None takes config.json's
    pad token, else its eos token. The new head is initialised from torch's global RNG.
    `base_state=None` builds on torch's current default device without loading weights
    (on the meta device: the shapes of what would be exported, without memory).

    Raises InvalidArgument: ("hparams.base") for a refused config or weights that do not
    fit it, ("n_classes"), ("hparams.task"), ("hparams.<setting>") for tuning settings the
    model cannot take.
    """
    if not isinstance(tune, TuneSpec):
        raise TypeError("tune must be a TuneSpec")
    if tune.task == "causal-lm":
        if n_classes is not None:
            raise InvalidArgument("n_classes", "a causal language model has no classes")
    elif isinstance(n_classes, bool) or not isinstance(n_classes, int) or not 2 <= n_classes <= _MAX_CLASSES:
        raise InvalidArgument("n_classes", f"an integer in 2..{_MAX_CLASSES}")
    hf_config = load_config(config)
    _auto_class(hf_config, tune.task)  # refuse an unsupported task before anything else
    pad = _pad_id(hf_config, pad_id)
    hf_config.use_cache = False  # training and our generate() run without a KV cache
    if tune.task == "sequence-classification":
        # Decoder classifiers (GPT-2, Llama) pool at each row's last token that is not the
        # config's pad token: it must be the tokenizer's.
        hf_config.pad_token_id = pad
    model = _task_model(hf_config, tune.task, n_classes)
    if base_state is not None:
        _load_base(model, hf_config, base_state)
    if tune.task == "causal-lm":
        if tune.tune == "lora" and not _lm_head_is_pretrained(model, base_state):
            raise InvalidArgument("hparams.base", "the base weights hold no LM head and config.json does not tie it to the embeddings: LoRA would train against a random, frozen head")
        if tune.tune != "lora":
            _untie_head(model)
    trained = apply_tuning(model, tune, hf_config.model_type)
    max_positions = getattr(hf_config, "max_position_embeddings", None)
    return PretrainedModel(model, task=tune.task, pad_id=pad, max_positions=max_positions, trained=trained)

"""Pre-trained transformers (`architectures.pretrained`): building from config.json and base
weights, tuning modes, export and rebuild, refusals. Tiny random models only.

The factories at the top (`tiny_config`, `tiny_base`, `tiny_tokenizer_json`, `tiny_model`,
`sample_ids`) are shared with the other `test_pretrained_*` files.
"""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Mapping
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from safetensors.torch import load as load_safetensors
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

from privet.governance.architectures import pretrained
from privet.governance.architectures.models import export_weights
from privet.governance.architectures.pretrained import PretrainedModel, build_model
from privet.governance.architectures.pretrained_text import PretrainedTokenizer
from privet.governance.architectures.pretrained_tuning import TUNES, TuneSpec
from privet.governance.errors import InvalidArgument

# -- tiny models ---------------------------------------------------------------------------

VOCAB = 128
_COMMON = {"vocab_size": VOCAB, "max_position_embeddings": 64}
# Dropout off: the parity tests compare two forward passes of the same batch.
_CONFIGS: dict[str, dict[str, Any]] = {
    "bert": {"model_type": "bert", **_COMMON, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "pad_token_id": 0},
    "roberta": {"model_type": "roberta", **_COMMON, "max_position_embeddings": 66, "hidden_size": 32, "num_hidden_layers": 2,
                "num_attention_heads": 2, "intermediate_size": 64, "hidden_dropout_prob": 0.0,
                "attention_probs_dropout_prob": 0.0, "pad_token_id": 0},
    "llama": {"model_type": "llama", **_COMMON, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "intermediate_size": 64, "bos_token_id": 1, "eos_token_id": 2},
    "gpt2": {"model_type": "gpt2", "vocab_size": VOCAB, "n_positions": 64, "n_embd": 32, "n_layer": 2, "n_head": 2,
             "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "bos_token_id": 0, "eos_token_id": 0},
}
# Special tokens first, so their ids are fixed: BERT pads with [PAD] (0); GPT-2 and Llama
# have no pad token and pad with their eos (0 and 2), as the tokenizer decides.
_SPECIALS = {
    "bert": ["[PAD]", "[UNK]", "[CLS]", "[SEP]"],
    "roberta": ["[PAD]", "[UNK]", "[CLS]", "[SEP]"],
    "llama": ["<unk>", "<s>", "</s>"],
    "gpt2": ["<|endoftext|>", "<unk>"],
}
PAD_ID = {"bert": 0, "roberta": 0, "llama": 2, "gpt2": 0}


def tiny_config(family: str) -> dict[str, Any]:
    """config.json of a tiny random model of `family` (a fresh dict each call)."""
    return dict(_CONFIGS[family])


@functools.cache
def _base(family: str) -> Mapping[str, torch.Tensor]:
    """Base weights as the plain model saves them: a bare body for BERT, RoBERTa and GPT-2
    (no prefix; GPT-2's LM head is tied to its embedding), a whole causal LM for Llama."""
    config = AutoConfig.for_model(**tiny_config(family))
    torch.manual_seed(1000 + len(family))
    plain = AutoModelForCausalLM.from_config(config) if family == "llama" else AutoModel.from_config(config)
    return {k: v.detach().clone() for k, v in plain.state_dict().items()}


def tiny_base(family: str) -> dict[str, torch.Tensor]:
    return dict(_base(family))


def tiny_tokenizer_json(family: str) -> str:
    """A WordLevel tokenizer over w0…wN with the family's special tokens."""
    specials = _SPECIALS[family]
    vocab = {token: i for i, token in enumerate(specials)}
    vocab.update({f"w{i}": len(specials) + i for i in range(VOCAB - len(specials))})
    unk = specials[1] if family != "llama" else "<unk>"
    tok = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(specials)
    if family in ("bert", "roberta"):
        tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    elif family == "llama":
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tok.to_str()


def sentences(n: int, seed: int, *, shortest: int = 1, longest: int = 12) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(f"w{rng.randrange(VOCAB - 4)}" for _ in range(rng.randint(shortest, longest))) for _ in range(n)]


def sample_ids(family: str, n: int, *, seed: int = 0, shortest: int = 1, max_length: int = 16) -> torch.Tensor:
    """Token ids of `n` random sentences of different lengths, padded as training pads them."""
    tokenizer = PretrainedTokenizer(tiny_tokenizer_json(family), max_length, eos_id=tiny_config(family).get("eos_token_id"))
    return tokenizer.encode(sentences(n, seed, shortest=shortest))


def tiny_model(family: str, task: str, tune: str, *, seed: int = 0, n_classes: int = 3) -> PretrainedModel:
    base = tiny_base(family)  # first: making it (once) draws from the global RNG
    torch.manual_seed(seed)
    n = n_classes if task == "sequence-classification" else None
    return build_model(tiny_config(family), TuneSpec(task=task, tune=tune), n, base, pad_id=PAD_ID[family])


CASES = [("bert", "sequence-classification"), ("llama", "sequence-classification"), ("gpt2", "causal-lm")]


def _shapes(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


# -- building --------------------------------------------------------------------------------


@pytest.mark.parametrize("family,task", CASES)
@pytest.mark.parametrize("tune", TUNES)
def test_meta_build_exports_what_a_real_build_exports(family: str, task: str, tune: str) -> None:
    real = tiny_model(family, task, tune)
    n_classes = 3 if task == "sequence-classification" else None
    with torch.device("meta"):
        meta = build_model(tiny_config(family), TuneSpec(task=task, tune=tune), n_classes, None, pad_id=PAD_ID[family])
    exported = meta.exported_state_dict()
    assert _shapes(exported) == _shapes(real.exported_state_dict())
    assert all(t.device.type == "meta" for t in exported.values())


def test_body_weights_land_under_the_task_models_names() -> None:
    base = tiny_base("bert")
    assert "embeddings.word_embeddings.weight" in base  # a bare BertModel: no "bert." prefix
    model = tiny_model("bert", "sequence-classification", "head")
    state = model.model.state_dict()
    for key, tensor in base.items():
        torch.testing.assert_close(state[f"bert.{key}"], tensor, rtol=0, atol=0)
    # A checkpoint already in the task model's names loads the same.
    prefixed = {f"bert.{k}": v for k, v in base.items()}
    again = build_model(tiny_config("bert"), TuneSpec(task="sequence-classification", tune="head"), 3, prefixed)
    torch.testing.assert_close(again.model.bert.pooler.dense.weight, base["pooler.dense.weight"], rtol=0, atol=0)


def test_tensors_of_the_architectures_other_heads_are_dropped() -> None:
    # RobertaModel saves a pooler that RoBERTa's classifier does not have; a Llama causal-LM
    # checkpoint has an LM head that the Llama classifier does not use.
    roberta = build_model(tiny_config("roberta"), TuneSpec(task="sequence-classification", tune="head"), 2, tiny_base("roberta"))
    assert "pooler.dense.weight" in tiny_base("roberta")
    assert not any("pooler" in k for k in roberta.model.state_dict())
    llama = tiny_model("llama", "sequence-classification", "head")
    torch.testing.assert_close(llama.model.model.norm.weight, tiny_base("llama")["model.norm.weight"], rtol=0, atol=0)


def test_tied_lm_head_comes_from_the_embedding_and_is_untied_to_train() -> None:
    base = tiny_base("gpt2")
    assert not any(k.startswith("lm_head") for k in base)
    lora = tiny_model("gpt2", "causal-lm", "lora")
    assert lora.model.lm_head.weight is lora.model.transformer.wte.weight  # frozen and still tied
    head = tiny_model("gpt2", "causal-lm", "head")
    assert head.model.lm_head.weight is not head.model.transformer.wte.weight
    torch.testing.assert_close(head.model.lm_head.weight, base["wte.weight"], rtol=0, atol=0)
    assert set(head.exported_state_dict()) == {"lm_head.weight"}
    assert not head.model.transformer.wte.weight.requires_grad


def test_what_each_mode_trains() -> None:
    head = tiny_model("bert", "sequence-classification", "head")
    assert set(head.exported_state_dict()) == {"classifier.weight", "classifier.bias"}
    last = tiny_model("llama", "sequence-classification", "last-k")
    names = set(last.exported_state_dict())
    assert {"score.weight", "model.norm.weight"} <= names
    assert all(n.startswith("model.layers.1.") for n in names - {"score.weight", "model.norm.weight"})
    bert_last = tiny_model("bert", "sequence-classification", "last-k")
    assert any(n.startswith("bert.pooler.") for n in bert_last.exported_state_dict())  # after the blocks: trained
    lora = tiny_model("bert", "sequence-classification", "lora")
    names = set(lora.exported_state_dict())
    assert "bert.encoder.layer.0.attention.self.query.lora_A.weight" in names
    assert "classifier.weight" in names
    assert not any(".default." in n for n in names)
    trainable = {n for n, p in lora.model.named_parameters() if p.requires_grad}
    assert len(trainable) == len(names)
    # Every module ending in a default target is adapted (attention and feed-forward "dense").
    assert {n.rsplit(".lora_", 1)[0].rsplit(".", 1)[-1] for n in names if ".lora_" in n} == {"query", "key", "value", "dense"}


def test_lora_never_adapts_the_head() -> None:
    # RoBERTa's classifier has its own "dense" layer: it trains in full, without an adapter.
    model = build_model(tiny_config("roberta"), TuneSpec(task="sequence-classification", tune="lora"), 2, tiny_base("roberta"))
    names = set(model.exported_state_dict())
    assert {"classifier.dense.weight", "classifier.out_proj.weight"} <= names
    assert not any(n.startswith("classifier.") and ".lora_" in n for n in names)


def test_causal_lm_lora_trains_adapters_only() -> None:
    model = tiny_model("llama", "causal-lm", "lora")
    names = set(model.exported_state_dict())
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names} == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_sdpa_and_eager_attention_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = sample_ids("llama", 4)
    sdpa = tiny_model("llama", "sequence-classification", "lora").eval()
    monkeypatch.setattr(pretrained, "ATTN_IMPLEMENTATION", "eager")
    eager = tiny_model("llama", "sequence-classification", "lora").eval()
    assert eager.model.config._attn_implementation == "eager" != sdpa.model.config._attn_implementation
    with torch.no_grad():
        torch.testing.assert_close(sdpa(ids), eager(ids), rtol=1e-5, atol=1e-6)


# -- the forward pass --------------------------------------------------------------------------


@pytest.mark.parametrize("family,task", CASES)
def test_padding_changes_no_output(family: str, task: str) -> None:
    model = tiny_model(family, task, "lora").eval()
    short = sample_ids(family, 3, max_length=14)
    padded = torch.cat([short, torch.full((3, 10), PAD_ID[family])], dim=1)
    with torch.no_grad():
        a, b = model(short), model(padded)
    if task == "causal-lm":
        b = b[:, : short.shape[1]]
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family,task", CASES)
def test_empty_text_and_empty_batch(family: str, task: str) -> None:
    model = tiny_model(family, task, "head").eval()
    with torch.no_grad():
        blank = model(torch.full((2, 8), PAD_ID[family]))
        empty = model(torch.zeros((0, 8), dtype=torch.int64))
    assert torch.isfinite(blank).all()
    assert empty.shape[0] == 0 and empty.shape[1:] == blank.shape[1:]


# -- export and rebuild ----------------------------------------------------------------------------


@pytest.mark.parametrize("family,task,tune", [("bert", "sequence-classification", "lora"), ("llama", "sequence-classification", "last-k"),
                                              ("gpt2", "causal-lm", "head"), ("gpt2", "causal-lm", "lora")])
def test_export_then_rebuild_gives_identical_logits(family: str, task: str, tune: str) -> None:
    trained = tiny_model(family, task, tune, seed=1)
    with torch.no_grad():  # stands in for training: every trained tensor moves
        for p in trained.trained_parameters().values():
            p.add_(torch.randn_like(p) * 0.1)
    weights = export_weights(trained)  # the catalog's exporter: safetensors, trained part only
    tensors = load_safetensors(weights)
    assert set(tensors) == set(trained.trained_parameters())
    rebuilt = tiny_model(family, task, tune, seed=2)  # another head and adapter initialisation
    rebuilt.load_exported(tensors)
    ids = sample_ids(family, 4)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(ids), trained.eval()(ids), rtol=0, atol=0)


def test_rebuild_refuses_missing_extra_or_misshapen_tensors() -> None:
    model = tiny_model("bert", "sequence-classification", "lora")
    good = {k: v.clone() for k, v in model.exported_state_dict().items()}
    missing = dict(good)
    missing.pop("classifier.bias")
    extra = {**good, "bert.pooler.dense.weight": torch.zeros(32, 32)}
    misshapen = {**good, "classifier.weight": torch.zeros(4, 32)}
    retyped = {**good, "classifier.weight": good["classifier.weight"].double()}
    for state in (missing, extra, misshapen, retyped):
        with pytest.raises(InvalidArgument) as err:
            model.load_exported(state)
        assert err.value.field == "weights"
    model.load_exported(good)


# -- refusals ------------------------------------------------------------------------------------------


def _refused(config: Mapping[str, Any], base: Mapping[str, torch.Tensor] | None, *, task: str = "sequence-classification",
             tune: TuneSpec | None = None, n_classes: int | None = 2) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as err:
        build_model(config, tune or TuneSpec(task=task, tune="head"), n_classes, base)
    return err.value


def test_custom_code_and_unknown_architectures_are_refused() -> None:
    custom = {**tiny_config("bert"), "auto_map": {"AutoModel": "modeling_evil.EvilModel"}}
    assert _refused(custom, None).field == "hparams.base"
    assert _refused({**tiny_config("bert"), "model_type": "not-a-model"}, None).field == "hparams.base"
    assert _refused({"hidden_size": 32}, None).field == "hparams.base"
    quantized = {**tiny_config("llama"), "quantization_config": {"quant_method": "bitsandbytes"}}
    assert _refused(quantized, None).field == "hparams.base"
    indivisible = {**tiny_config("bert"), "num_attention_heads": 5}  # 32 wide, 5 heads
    assert _refused(indivisible, None).field == "hparams.base"
    vision = {"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    assert _refused(vision, None, task="causal-lm", n_classes=None).field == "hparams.task"


def test_base_weights_that_do_not_fit_are_refused() -> None:
    config = tiny_config("bert")
    unexpected = {**tiny_base("bert"), "encoder.layer.7.output.dense.weight": torch.zeros(32, 64)}
    assert "unexpected" in _refused(config, unexpected).description
    misshapen = {**tiny_base("bert"), "embeddings.word_embeddings.weight": torch.zeros(VOCAB + 1, 32)}
    assert "shape" in _refused(config, misshapen).description
    incomplete = tiny_base("bert")
    incomplete.pop("encoder.layer.1.attention.self.query.weight")
    assert "lack" in _refused(config, incomplete).description
    known_but_misshapen = {**tiny_base("roberta"), "pooler.dense.weight": torch.zeros(3, 3)}
    assert _refused(tiny_config("roberta"), known_but_misshapen).field == "hparams.base"


def test_a_causal_lm_without_its_head_is_refused_for_lora() -> None:
    body = {k.removeprefix("model."): v for k, v in tiny_base("llama").items() if k.startswith("model.")}
    error = _refused(tiny_config("llama"), body, tune=TuneSpec(task="causal-lm", tune="lora"), n_classes=None)
    assert error.field == "hparams.base" and "LM head" in error.description
    # Trained in head mode, a new head is fine.
    build_model(tiny_config("llama"), TuneSpec(task="causal-lm", tune="head"), None, body)


def test_tuning_settings_the_model_cannot_take_are_refused() -> None:
    config, base = tiny_config("bert"), tiny_base("bert")
    nowhere = TuneSpec(task="sequence-classification", tune="lora", lora_targets=["query", "no_such_layer"])
    assert _refused(config, base, tune=nowhere).field == "hparams.lora_targets"
    not_linear = TuneSpec(task="sequence-classification", tune="lora", lora_targets=["LayerNorm"])
    assert _refused(config, base, tune=not_linear).field == "hparams.lora_targets"
    too_deep = TuneSpec(task="sequence-classification", tune="last-k", last_k=3)
    assert _refused(config, base, tune=too_deep).field == "hparams.last_k"
    assert _refused(config, base, n_classes=None).field == "n_classes"
    assert _refused(config, base, n_classes=1).field == "n_classes"
    assert _refused(tiny_config("gpt2"), None, task="causal-lm", n_classes=2).field == "n_classes"
    no_default = {**tiny_config("bert"), "model_type": "electra", "embedding_size": 32}
    assert _refused(no_default, None, tune=TuneSpec(task="sequence-classification", tune="lora")).field == "hparams.lora_targets"


# -- the tuning spec ---------------------------------------------------------------------------------------


def test_tune_spec_round_trips_and_checks_every_field() -> None:
    spec = TuneSpec(task="causal-lm", tune="lora", lora_rank=4, lora_alpha=8, lora_targets=["q_proj", "v_proj"], last_k=2)
    assert TuneSpec.from_json(spec.to_json()) == spec
    assert spec.lora_targets == ("q_proj", "v_proj") and spec.lora_alpha == 8.0
    assert TuneSpec(task="causal-lm", tune="head").targets_for("gpt2") == ("c_attn", "c_proj", "c_fc")
    bad = [
        ({"task": "translation", "tune": "lora"}, "hparams.task"),
        ({"task": "causal-lm", "tune": "all"}, "hparams.tune"),
        ({"task": "causal-lm", "tune": "lora", "lora_rank": 0}, "hparams.lora_rank"),
        ({"task": "causal-lm", "tune": "lora", "lora_rank": 257}, "hparams.lora_rank"),
        ({"task": "causal-lm", "tune": "lora", "lora_rank": True}, "hparams.lora_rank"),
        ({"task": "causal-lm", "tune": "lora", "lora_alpha": 0}, "hparams.lora_alpha"),
        ({"task": "causal-lm", "tune": "lora", "lora_targets": "q_proj"}, "hparams.lora_targets"),
        ({"task": "causal-lm", "tune": "lora", "lora_targets": []}, "hparams.lora_targets"),
        ({"task": "causal-lm", "tune": "lora", "lora_targets": ["q proj"]}, "hparams.lora_targets"),
        ({"task": "causal-lm", "tune": "last-k", "last_k": 0}, "hparams.last_k"),
        ({"task": "causal-lm", "tune": "lora", "dropout": 0.1}, "hparams.dropout"),
        ({"tune": "lora"}, "hparams.task"),
    ]
    for data, field in bad:
        with pytest.raises(InvalidArgument) as err:
            TuneSpec.from_json(data)
        assert err.value.field == field, data


def test_models_build_the_same_under_the_same_seed() -> None:
    a = tiny_model("llama", "sequence-classification", "lora", seed=3).exported_state_dict()
    b = tiny_model("llama", "sequence-classification", "lora", seed=3).exported_state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_task_model_of_the_right_class_is_built() -> None:
    model = tiny_model("gpt2", "sequence-classification", "head")
    assert type(model.model) is type(AutoModelForSequenceClassification.from_config(AutoConfig.for_model(**tiny_config("gpt2"))))
    assert model.model.config.pad_token_id == PAD_ID["gpt2"]

"""A base model's tokenizer (`PretrainedTokenizer`), the causal-LM loss and `generate`."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from torch import nn

from privet.governance.architectures.pretrained_causal import CausalLMLoss, causal_lm_loss, causal_lm_loss_per_sample, generate
from privet.governance.architectures.pretrained_text import PretrainedTokenizer
from privet.governance.errors import InvalidArgument
from tests.unit.architectures.test_pretrained_models import PAD_ID, VOCAB, tiny_model, tiny_tokenizer_json

# -- the tokenizer --------------------------------------------------------------------------


def test_bert_style_tokenizer_pads_with_its_pad_token_and_truncates() -> None:
    text = tiny_tokenizer_json("bert")
    tok = PretrainedTokenizer(text, 6)
    assert tok.pad_id == 0 and tok.eos_id is None
    assert tok.sha256 == hashlib.sha256(text.encode()).hexdigest()
    ids = tok.encode(["w1 w2", "w1 w2 w3 w4 w5 w6 w7", ""])
    assert ids.dtype == torch.int64 and ids.shape == (3, 6)
    assert ids[0].tolist() == [2, 5, 6, 3, 0, 0]  # [CLS] w1 w2 [SEP] [PAD] [PAD]
    assert ids[1].tolist() == [2, 5, 6, 7, 8, 3]  # truncated, [SEP] kept
    assert ids[2].tolist() == [2, 3, 0, 0, 0, 0]
    assert tok.decode(ids[0]) == "w1 w2"
    assert tok.encode([]).shape == (0, 6)


def test_a_tokenizer_without_pad_token_pads_with_eos() -> None:
    gpt2 = PretrainedTokenizer(tiny_tokenizer_json("gpt2"), 8)
    assert gpt2.pad_id == gpt2.eos_id == 0  # <|endoftext|>, found by name
    llama = PretrainedTokenizer(tiny_tokenizer_json("llama"), 8, eos_id=2)
    assert llama.pad_id == 2 and llama.encode(["w0"])[0].tolist() == [1, 3, 2, 2, 2, 2, 2, 2]  # <s> w0, then eos padding
    assert llama.token_ids("w0 w1") == [1, 3, 4]


def test_the_files_own_padding_setting_names_the_pad_token_but_not_the_length() -> None:
    data = json.loads(tiny_tokenizer_json("gpt2"))
    data["padding"] = {"strategy": "BatchLongest", "direction": "Left", "pad_to_multiple_of": None,
                       "pad_id": 1, "pad_type_id": 0, "pad_token": "<unk>"}
    tok = PretrainedTokenizer(json.dumps(data), 4)
    assert tok.pad_id == 1
    assert tok.encode(["w0"])[0].tolist() == [2, 1, 1, 1]  # right-padded to max_length regardless


def test_tokenizers_it_cannot_use_are_refused() -> None:
    data = json.loads(tiny_tokenizer_json("gpt2"))
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] != "<|endoftext|>"]
    with pytest.raises(InvalidArgument, match="no pad token"):
        PretrainedTokenizer(json.dumps(data), 8)
    PretrainedTokenizer(json.dumps(data), 8, eos_id=0)  # config.json's eos_token_id will do
    for bad_eos in (-1, VOCAB, True):
        with pytest.raises(InvalidArgument):
            PretrainedTokenizer(tiny_tokenizer_json("gpt2"), 8, eos_id=bad_eos)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument) as err:
        PretrainedTokenizer("{not json", 8)
    assert err.value.field == "tokenizer"
    for length in (1, 10**6, True):
        with pytest.raises(InvalidArgument) as err:
            PretrainedTokenizer(tiny_tokenizer_json("bert"), length)  # type: ignore[arg-type]
        assert err.value.field == "max_length"


# -- the loss ----------------------------------------------------------------------------------


def test_padding_targets_do_not_count() -> None:
    torch.manual_seed(0)
    pad = 0
    ids = torch.tensor([[5, 6, 7, pad, pad], [5, 6, 7, 8, 9]])
    logits = torch.randn(2, 5, 11)
    per_sample = causal_lm_loss_per_sample(logits, ids, pad)
    # Row 0's positions 0 and 1 predict 6 and 7; positions 2.. predict padding (or
    # nothing), so whatever their logits say changes nothing.
    scrambled = logits.clone()
    scrambled[0, 2:] = torch.randn(3, 11)
    assert torch.allclose(causal_lm_loss_per_sample(scrambled, ids, pad), per_sample)
    expected0 = nn.functional.cross_entropy(logits[0, :2], ids[0, 1:3])
    torch.testing.assert_close(per_sample[0], expected0)
    torch.testing.assert_close(causal_lm_loss(logits, ids, pad), per_sample.mean())


def test_each_sample_averages_over_its_own_tokens_only() -> None:
    torch.manual_seed(1)
    ids = torch.tensor([[3, 4, 0, 0, 0, 0], [3, 4, 5, 6, 7, 8]])
    logits = torch.randn(2, 6, 9, requires_grad=True)
    causal_lm_loss(logits, ids, 0).backward()
    alone = logits.detach()[:1].clone().requires_grad_(True)
    causal_lm_loss(alone, ids[:1], 0).backward()
    # In a batch of two, sample 0's gradient is half of its own (the batch mean), not
    # diluted by sample 1's five tokens.
    assert logits.grad is not None and alone.grad is not None
    torch.testing.assert_close(logits.grad[0], alone.grad[0] / 2)


def test_rows_without_targets_and_empty_batches_give_zero_not_nan() -> None:
    logits = torch.randn(2, 3, 5)
    ids = torch.tensor([[4, 0, 0], [0, 0, 0]])
    assert torch.equal(causal_lm_loss_per_sample(logits, ids, 0), torch.zeros(2))
    assert float(causal_lm_loss(torch.zeros(0, 3, 5), torch.zeros(0, 3, dtype=torch.long), 0)) == 0.0


def test_criterion_reductions() -> None:
    logits, ids = torch.randn(3, 4, 6), torch.tensor([[1, 2, 3, 0], [1, 2, 0, 0], [1, 5, 4, 3]])
    per_sample = causal_lm_loss_per_sample(logits, ids, 0)
    assert torch.equal(CausalLMLoss(0, "none")(logits, ids), per_sample)
    torch.testing.assert_close(CausalLMLoss(0, "sum")(logits, ids), per_sample.sum())
    torch.testing.assert_close(CausalLMLoss(0)(logits, ids), per_sample.mean())


# -- generation ----------------------------------------------------------------------------------


class _Biased(nn.Module):
    """The model's logits plus a fixed bias: steers generation towards or away from tokens."""

    def __init__(self, model: nn.Module, bias: torch.Tensor) -> None:
        super().__init__()
        self.model, self.bias = model, bias
        self.max_positions = getattr(model, "max_positions", None)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model(ids) + self.bias
        return out


def _lm() -> tuple[nn.Module, PretrainedTokenizer]:
    model = tiny_model("gpt2", "causal-lm", "lora", seed=4)
    no_specials = torch.zeros(VOCAB)
    no_specials[:2] = -1e9  # <|endoftext|> and <unk>: every generated token is a word
    return _Biased(model, no_specials), PretrainedTokenizer(tiny_tokenizer_json("gpt2"), 16)


def test_greedy_generation_is_deterministic_and_stops_at_max_new_tokens() -> None:
    model, tok = _lm()
    model.train()
    first = generate(model, tok, "w1 w2 w3", 7, do_sample=False, temperature=1.0, top_p=1.0, generator=None)
    assert len(first.split()) == 7
    assert generate(model, tok, "w1 w2 w3", 7, do_sample=False, temperature=1.0, top_p=1.0, generator=None) == first
    assert model.training  # put back as it was
    assert generate(model, tok, "w1 w2 w3", 0, do_sample=False, temperature=1.0, top_p=1.0, generator=None) == ""


def test_generation_stops_at_eos_and_at_the_models_positions() -> None:
    model, tok = _lm()
    always_eos = torch.zeros(VOCAB)
    always_eos[PAD_ID["gpt2"]] = 1e9
    eos_model = _Biased(model.model, always_eos)  # the unsteered model, pushed to eos
    assert generate(eos_model, tok, "w1", 5, do_sample=False, temperature=1.0, top_p=1.0, generator=None) == ""
    assert model.max_positions == 64  # the tiny GPT-2's n_positions, as the wrapper records it
    model.max_positions = 10  # a shorter bound, to keep the test fast
    long = generate(model, tok, "w1 w2 w3", 500, do_sample=False, temperature=1.0, top_p=1.0, generator=None)
    assert len(long.split()) == 10 - 3
    empty_prompt = generate(model, tok, "", 3, do_sample=False, temperature=1.0, top_p=1.0, generator=None)
    assert len(empty_prompt.split()) == 3  # started from <|endoftext|>


def test_sampling_is_reproducible_with_a_seeded_generator() -> None:
    model, tok = _lm()

    def sample(seed: int, top_p: float = 0.9) -> str:
        return generate(model, tok, "w5", 8, do_sample=True, temperature=1.5, top_p=top_p, generator=torch.Generator().manual_seed(seed))

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)
    greedy = generate(model, tok, "w5", 8, do_sample=False, temperature=1.0, top_p=1.0, generator=None)
    assert sample(9, top_p=1e-9) == greedy  # the nucleus holds the most likely token only


def test_generation_settings_are_checked() -> None:
    model, tok = _lm()
    for kwargs, field in [({"max_new_tokens": -1}, "max_new_tokens"), ({"temperature": 0.0}, "temperature"),
                          ({"top_p": 0.0}, "top_p"), ({"top_p": 1.5}, "top_p")]:
        settings = {"max_new_tokens": 3, "do_sample": True, "temperature": 1.0, "top_p": 1.0, "generator": None, **kwargs}
        with pytest.raises(InvalidArgument) as err:
            generate(model, tok, "w1", **settings)  # type: ignore[arg-type]
        assert err.value.field == field

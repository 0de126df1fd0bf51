"""Causal language modelling on a `PretrainedModel`: the training loss, and text generation.

The loss is per sample first: each sequence's next-token cross entropy is averaged over
its own non-pad targets, and only then over the batch. A sample's gradient is then its own
(not weighted by how many tokens the other rows of its batch happen to have), which is
what DP-SGD's per-sample clipping bounds.

`generate` is a plain loop over the model's logits (no KV cache: the wrapped model
recomputes the prefix each step, which is fine for the short completions served here).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from privet.governance.architectures.pretrained_text import PretrainedTokenizer
from privet.governance.errors import InvalidArgument

__all__ = ["CausalLMLoss", "causal_lm_loss", "causal_lm_loss_per_sample", "generate"]


def causal_lm_loss_per_sample(logits: torch.Tensor, ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Each row's mean next-token cross entropy over its non-pad targets (rows,). A row
    with no target (one token, or padding only) has loss 0, never NaN."""
    targets = ids[:, 1:]
    per_token = F.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten(), reduction="none").view_as(targets)
    keep = (targets != pad_id).to(per_token.dtype)
    return (per_token * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)


def causal_lm_loss(logits: torch.Tensor, ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """The batch mean of `causal_lm_loss_per_sample` (0 for an empty batch)."""
    per_sample = causal_lm_loss_per_sample(logits, ids, pad_id)
    return per_sample.sum() / max(per_sample.shape[0], 1)


class CausalLMLoss(nn.Module):
    """`causal_lm_loss` as a criterion with a `reduction` ("mean", "sum" or "none": one
    value per row), the form Opacus's ghost clipping (`DPLossFastGradientClipping`) needs:
    it sets reduction to "none" to get per-sample losses. Call as ``loss(logits, ids)``."""

    def __init__(self, pad_id: int, reduction: str = "mean") -> None:
        super().__init__()
        self.pad_id = pad_id
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        per_sample = causal_lm_loss_per_sample(logits, ids, self.pad_id)
        if self.reduction == "none":
            return per_sample
        if self.reduction == "sum":
            return per_sample.sum()
        return per_sample.sum() / max(per_sample.shape[0], 1)


def _check(max_new_tokens: int, temperature: float, top_p: float) -> None:
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or not 0 <= max_new_tokens <= 65536:
        raise InvalidArgument("max_new_tokens", "an integer in 0..65536")
    if not (isinstance(temperature, (int, float)) and 0 < float(temperature) <= 100):
        raise InvalidArgument("temperature", "a number in (0, 100]")
    if not (isinstance(top_p, (int, float)) and 0 < float(top_p) <= 1):
        raise InvalidArgument("top_p", "a number in (0, 1]")


def _sample(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> int:
    """One token from softmax(logits / temperature), restricted to the smallest set of most
    likely tokens whose probability reaches top_p (nucleus sampling)."""
    # On the CPU in float64: the generator is a CPU one, and the draw must not depend on
    # the device's kernels.
    probs = torch.softmax(logits.detach().to("cpu", torch.float64) / temperature, dim=-1)
    sorted_probs, order = torch.sort(probs, descending=True)
    # Keep a token when the tokens ranked above it hold less than top_p (the first always).
    keep = (torch.cumsum(sorted_probs, dim=-1) - sorted_probs) < top_p
    kept = sorted_probs * keep
    choice = torch.multinomial(kept / kept.sum(), 1, generator=generator)
    return int(order[choice])


@torch.no_grad()
def generate(
    model: nn.Module,
    tokenizer: PretrainedTokenizer,
    prompt: str,
    max_new_tokens: int,
    *,
    do_sample: bool,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> str:
    """The completion of `prompt` (the new text only): greedy (`do_sample` False) or
    sampled with `temperature` and nucleus `top_p` from `generator` (None: torch's global
    RNG). Stops after `max_new_tokens`, at the end-of-sequence token, or when the sequence
    reaches the model's `max_positions`. `model` maps ids (1 × tokens) to logits
    (1 × tokens × vocabulary), like a causal-LM `PretrainedModel`; it runs in eval mode and
    is put back in the mode it was in.

    Raises InvalidArgument naming `max_new_tokens`, `temperature`, `top_p`, or `prompt`
    (an empty prompt needs an end-of-sequence token to start from)."""
    _check(max_new_tokens, temperature, top_p)
    ids = tokenizer.token_ids(prompt)
    if not ids:
        # GPT-2 style: a document starts after an end-of-text token.
        if tokenizer.eos_id is None:
            raise InvalidArgument("prompt", "empty, and the tokenizer has no end-of-sequence token to start from")
        ids = [tokenizer.eos_id]
    limit = getattr(model, "max_positions", None) or len(ids) + max_new_tokens
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    new: list[int] = []
    try:
        for _ in range(max_new_tokens):
            if len(ids) >= limit:
                break
            logits = model(torch.tensor([ids], dtype=torch.int64, device=device))[0, -1]
            token = _sample(logits, float(temperature), float(top_p), generator) if do_sample else int(logits.argmax())
            if token == tokenizer.eos_id:
                break
            ids.append(token)
            new.append(token)
    finally:
        model.train(was_training)
    return tokenizer.decode(new)

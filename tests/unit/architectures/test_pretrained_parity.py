"""DP-SGD on pre-trained transformers does what a plain step does, sample by sample.

Users of Opacus with peft reported LoRA updates silently corrupted. Here, for every tuning
mode on a BERT and a Llama classifier and a GPT-2 causal LM, in both of Privet's Opacus
modes (``hooks``: per-sample gradients; ``ghost``: ghost clipping, two backward passes):

- without noise and with a clipping norm no sample reaches, one DP step moves every
  trained parameter exactly as one plain SGD step does, and nothing else;
- with a clipping norm every sample exceeds, the step is the mean of the per-sample
  gradients each clipped on its own (computed by hand, one backward pass per sample);
- an empty Poisson draw steps without error and adds nothing.

The DP step is Privet's: `SecurePrivacyEngine` (Privet's optimizers, noise drawn from a
`SecureRandom` stand-in) and the step as `dp.PrivateTraining.step` takes it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from privet.governance.architectures.pretrained import PretrainedModel
from privet.governance.architectures.pretrained_causal import CausalLMLoss, causal_lm_loss_per_sample
from privet.governance.architectures.pretrained_tuning import TUNES
from privet.services.training._opacus_overrides import SecurePrivacyEngine
from privet.services.training.dp import TensorRows
from tests.seeded_random import SeededRandom
from tests.unit.architectures.test_pretrained_models import CASES, sample_ids, tiny_model

pytestmark = [
    pytest.mark.filterwarnings("ignore:Secure RNG turned off"),
    pytest.mark.filterwarnings("ignore:Full backward hook is firing"),
    pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha"),
]

LR = 0.5
MODES = ("hooks", "ghost")


def _model(family: str, task: str, tune: str) -> PretrainedModel:
    model = tiny_model(family, task, tune, seed=11)
    # peft starts every lora_B at zero, so lora_A gets no gradient on a first step; a
    # small random B lets one step show that every adapter weight moves as it should.
    with torch.no_grad():
        for name, p in model.trained_parameters().items():
            if ".lora_B." in name:
                p.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(len(name)))
    return model


def _labels(n: int) -> torch.Tensor:
    return torch.arange(n) % 3


def _per_sample_loss(model: PretrainedModel, logits: torch.Tensor, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if model.task == "causal-lm":
        return causal_lm_loss_per_sample(logits, ids, model.pad_id)
    return F.cross_entropy(logits, labels, reduction="none")


@dataclass
class _Private:
    mode: str
    model: PretrainedModel
    module: nn.Module
    optimizer: torch.optim.Optimizer
    criterion: nn.Module


def _private(model: PretrainedModel, mode: str, *, rows: int, max_grad_norm: float) -> _Private:
    """Opacus set up as `dp.make_private` sets it up, with σ = 0 and a sampling rate of 1
    (one batch of `rows`: the expected batch size the optimizer divides by)."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=LR)
    loader = DataLoader(TensorRows(torch.zeros(rows, 1), torch.zeros(rows)), batch_size=rows)  # read for its length only
    criterion: nn.Module = CausalLMLoss(model.pad_id) if model.task == "causal-lm" else nn.CrossEntropyLoss()
    made = SecurePrivacyEngine(accountant="rdp", random=SeededRandom(0)).make_private(
        module=model,
        optimizer=optimizer,
        criterion=criterion,
        data_loader=loader,
        noise_multiplier=0.0,
        max_grad_norm=max_grad_norm,
        poisson_sampling=True,
        grad_sample_mode=mode,
    )
    if mode == "ghost":
        module, dp_optimizer, dp_criterion, _ = made
        return _Private(mode, model, module, dp_optimizer, dp_criterion)
    module, dp_optimizer, _ = made
    return _Private(mode, model, module, dp_optimizer, criterion)


def _dp_step(private: _Private, ids: torch.Tensor, labels: torch.Tensor) -> None:
    """`dp.PrivateTraining.step`, with the causal-LM loss where the task needs it (its
    target is the ids themselves)."""
    private.optimizer.zero_grad(set_to_none=True)
    logits = private.module(ids)
    if private.mode == "ghost":
        private.criterion(logits, ids if private.model.task == "causal-lm" else labels).backward()
    else:
        per_row = _per_sample_loss(private.model, logits, ids, labels)
        (per_row.sum() / max(per_row.shape[0], 1)).backward()
    private.optimizer.step()


def _plain_step(model: PretrainedModel, ids: torch.Tensor, labels: torch.Tensor) -> None:
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=LR)
    _per_sample_loss(model, model(ids), ids, labels).mean().backward()
    optimizer.step()


def _snapshot(model: PretrainedModel) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.model.named_parameters()}


def _zero_by_construction(name: str) -> bool:
    """BERT's attention key bias adds the same score to every key of a query, which softmax
    ignores: its true gradient is 0, and what autograd gives is rounding noise."""
    return name.endswith(".attention.self.key.bias")


def _assert_gradients(model: PretrainedModel, expected: dict[str, torch.Tensor]) -> None:
    """The gradient the step applied (Opacus leaves the clipped, noised, averaged one in
    `p.grad`) equals `expected` to 1e-4 of each tensor's largest entry: float32 rounding
    of the different summation orders, and far below any corruption."""
    got = model.trained_parameters()
    assert set(got) == set(expected)
    overall = max(float(g.abs().max()) for g in expected.values())
    for name, p in got.items():
        assert p.grad is not None, name
        scale = overall * 1e-2 if _zero_by_construction(name) else float(expected[name].abs().max())
        assert scale > 0, f"{name}: no gradient to compare"
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-4, atol=1e-4 * scale, msg=name)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("tune", TUNES)
@pytest.mark.parametrize("family,task", CASES)
def test_a_step_without_noise_or_clipping_is_a_plain_step(family: str, task: str, tune: str, mode: str) -> None:
    model = _model(family, task, tune)
    plain = copy.deepcopy(model)
    before = _snapshot(model)
    ids, labels = sample_ids(family, 6, seed=1), _labels(6)
    _plain_step(plain, ids, labels)
    _dp_step(_private(model, mode, rows=6, max_grad_norm=1e6), ids, labels)

    _assert_gradients(model, {name: p.grad for name, p in plain.trained_parameters().items()})  # type: ignore[misc]
    after = _snapshot(model)
    trained = {name for name, p in model.model.named_parameters() if p.requires_grad}
    assert len(trained) == len(model.trained_parameters())
    for name, value in after.items():
        if name not in trained:
            assert torch.equal(value, before[name]), f"frozen {name} moved"
        elif not _zero_by_construction(name):
            assert not torch.equal(value, before[name]), f"{name} did not move"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("tune", TUNES)
@pytest.mark.parametrize("family,task", CASES)
def test_each_sample_is_clipped_on_its_own(family: str, task: str, tune: str, mode: str) -> None:
    model = _model(family, task, tune)
    reference = copy.deepcopy(model)
    ids, labels = sample_ids(family, 2, seed=2, shortest=3), _labels(2)
    params = list(reference.trained_parameters().values())
    grads, norms = [], []
    for i in range(2):  # one backward pass per sample, no Opacus
        loss = _per_sample_loss(reference, reference(ids[i : i + 1]), ids[i : i + 1], labels[i : i + 1]).sum()
        g = torch.autograd.grad(loss, params)
        grads.append(g)
        norms.append(float(torch.sqrt(sum(x.pow(2).sum() for x in g))))
    clip = 0.5 * min(norms)  # both samples are clipped
    factors = [min(1.0, clip / (n + 1e-6)) for n in norms]  # Opacus's factor
    expected = {
        name: (factors[0] * g0 + factors[1] * g1) / 2 for name, g0, g1 in zip(reference.trained_parameters(), grads[0], grads[1])
    }
    _dp_step(_private(model, mode, rows=2, max_grad_norm=clip), ids, labels)
    _assert_gradients(model, expected)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family,task", CASES)
def test_an_empty_poisson_draw_adds_nothing(family: str, task: str, mode: str) -> None:
    model = _model(family, task, "lora")
    before = _snapshot(model)
    private = _private(model, mode, rows=4, max_grad_norm=1.0)
    _dp_step(private, torch.zeros((0, 16), dtype=torch.int64), torch.zeros(0, dtype=torch.int64))
    after = _snapshot(model)
    assert all(torch.equal(after[name], before[name]) for name in before)

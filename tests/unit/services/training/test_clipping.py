"""One-pass (book-keeping) clipping equals per-sample clipping done the slow way and
Opacus's own; the leaner noise keeps Opacus's distribution."""

from __future__ import annotations

import pytest
import torch
from opacus import PrivacyEngine
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from privet.governance.architectures import build_model
from privet.services.training.clipping import BookkeepingClipper, supports_bookkeeping
from privet.services.training.dp import TensorRows, make_private

pytestmark = [
    pytest.mark.filterwarnings("ignore:Secure RNG turned off"),
    pytest.mark.filterwarnings("ignore:Full backward hook is firing"),
]

C = 0.5


def _data(rows: int = 24, features: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.randn(rows, features) * 3
    return x, (x[:, 0] > 0).long()


def _reference(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """Σ_i min(1, C/(‖∇ℓ_i‖+1e-6)) ∇ℓ_i, one row at a time."""
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    for i in range(x.shape[0]):
        grads = torch.autograd.grad(F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]), params)
        norm = torch.sqrt(sum(g.pow(2).sum() for g in grads))
        coef = min(1.0, C / (float(norm) + 1e-6))
        for t, g in zip(total, grads):
            t += coef * g
    return total


@pytest.mark.parametrize("arch", ["logreg", "mlp"])
def test_clipped_sum_equals_per_sample_reference(arch: str) -> None:
    x, y = _data()
    torch.manual_seed(1)
    model = build_model(arch, 6, 2, **({"hidden": [7, 5]} if arch == "mlp" else {}))
    expected = _reference(model, x, y)
    clipper = BookkeepingClipper(model, max_grad_norm=C)
    clipper.start()
    clipper.backward(F.cross_entropy(model(x), y, reduction="none"))
    for p, e in zip(model.parameters(), expected):
        assert torch.allclose(p.grad, e, atol=1e-6, rtol=1e-5)
    assert clipper.per_sample_norms is not None and clipper.per_sample_norms.shape == (24,)


def test_clipped_sum_equals_opacus_hooks_mode() -> None:
    x, y = _data()
    torch.manual_seed(1)
    ours = build_model("mlp", 6, 2, hidden=[7, 5])
    theirs = build_model("mlp", 6, 2, hidden=[7, 5])
    theirs.load_state_dict(ours.state_dict())
    opt = torch.optim.SGD(theirs.parameters(), lr=0.0)
    gsm, dp_opt, _ = PrivacyEngine().make_private(
        module=theirs,
        optimizer=opt,
        data_loader=DataLoader(TensorDataset(x, y), batch_size=24),
        noise_multiplier=0.0,
        max_grad_norm=C,
        grad_sample_mode="hooks",
    )
    F.cross_entropy(gsm(x), y).backward()
    dp_opt.step()  # clip, (zero) noise, divide by the expected batch size 24
    clipper = BookkeepingClipper(ours, max_grad_norm=C)
    clipper.start()
    clipper.backward(F.cross_entropy(ours(x), y, reduction="none"))
    for mine, reference in zip(ours.parameters(), theirs.parameters()):
        assert torch.allclose(mine.grad / 24, reference.grad, atol=1e-6, rtol=1e-5)


def test_empty_batch_gives_zero_gradients() -> None:
    model = build_model("mlp", 6, 2, hidden=[4])
    clipper = BookkeepingClipper(model, max_grad_norm=C)
    clipper.start()
    x = torch.zeros(0, 6)
    clipper.backward(F.cross_entropy(model(x), torch.zeros(0, dtype=torch.long), reduction="none"))
    assert all(bool((p.grad == 0).all()) for p in model.parameters())


def test_models_it_cannot_handle_are_refused() -> None:
    assert supports_bookkeeping(build_model("mlp", 4, 2))
    norm_model = build_model("mlp", 4, 2, layer_norm=True)
    assert not supports_bookkeeping(norm_model)
    with pytest.raises(ValueError):
        BookkeepingClipper(norm_model, max_grad_norm=1.0)


def test_tied_layer_is_refused_at_forward() -> None:
    layer = nn.Linear(3, 3)
    model = nn.Sequential(layer, nn.ReLU(), layer)
    clipper = BookkeepingClipper(model, max_grad_norm=1.0)
    clipper.start()
    with pytest.raises(RuntimeError, match="ran twice"):
        model(torch.randn(2, 3))


@pytest.mark.parametrize("mode", ["bk", "ghost", "hooks"])
def test_noise_has_opacus_distribution(mode: str) -> None:
    """With zero gradients the update is pure noise: N(0, (σC)²) per coordinate, divided by
    the expected batch size."""
    torch.manual_seed(0)
    model = build_model("mlp", 64, 2, hidden=[256, 128])
    for p in model.parameters():
        nn.init.zeros_(p)
    rows = 1000
    training = make_private(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
        train=TensorRows(torch.zeros(rows, 64), torch.zeros(rows, dtype=torch.long)),
        batch_size=100,
        epochs=1,
        target_epsilon=5.0,
        delta=1e-5,
        max_grad_norm=C,
        accountant="rdp",
        mode=mode,
        calibration="accountant",
    )
    sigma = training.noise_multiplier
    training.step(torch.zeros(0, 64), torch.zeros(0, dtype=torch.long))  # an empty Poisson draw
    update = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert update.numel() > 40_000
    expected_std = sigma * C / training.expected_batch_size
    assert abs(float(update.std()) / expected_std - 1) < 0.02
    assert abs(float(update.mean())) < 0.02 * expected_std
    assert training.steps == 1
    training.close()

"""SecureRandom: the secret source of DP noise and Poisson sampling, and that training uses it."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from privet.governance.architectures import build_model
from privet.governance.privacy.secure_random import SecureRandom
from privet.services.training._opacus_overrides import SecurePoissonSampler
from privet.services.training.dp import TensorRows, make_private


def test_gaussian_draws_follow_the_normal_law() -> None:
    draws = SecureRandom().normal(200_001, 2.5, dtype=torch.float64).numpy()
    assert draws.shape == (200_001,)
    # Kolmogorov–Smirnov against N(0, 2.5²): a wrong transform or a biased uniform fails.
    assert stats.kstest(draws / 2.5, "norm").pvalue > 1e-4
    assert abs(draws.mean()) < 0.02 and abs(draws.std() / 2.5 - 1) < 0.01


def test_uniforms_lie_in_the_half_open_unit_interval_and_bernoulli_has_its_rate() -> None:
    source = SecureRandom()
    u = source.uniform(100_000)
    assert u.min() > 0 and u.max() <= 1
    assert stats.kstest(u, "uniform").pvalue > 1e-4
    mask = source.bernoulli_mask(100_000, 0.03)
    assert mask.dtype == torch.bool and abs(float(mask.float().mean()) - 0.03) < 0.003


def test_two_sources_never_share_a_stream_and_one_cannot_be_copied() -> None:
    a, b = SecureRandom(), SecureRandom()
    assert a.random_bytes(64) != b.random_bytes(64)
    assert a.random_bytes(64) != a.random_bytes(64)  # a stream, not a repeated block
    with pytest.raises(TypeError):
        pickle.dumps(a)
    with pytest.raises(TypeError):
        copy.deepcopy(a)
    assert repr(a) == "SecureRandom()"


def _private(rows: int = 500) -> tuple[nn.Module, object]:
    torch.manual_seed(0)
    model = build_model("logreg", 4, 2)
    for p in model.parameters():
        nn.init.zeros_(p)
    training = make_private(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
        train=TensorRows(torch.zeros(rows, 4), torch.zeros(rows, dtype=torch.long)),
        batch_size=50,
        epochs=1,
        target_epsilon=2.0,
        delta=1e-5,
        max_grad_norm=1.0,
        accountant="rdp",
        mode="hooks",
    )
    return model, training


def test_noise_and_sampling_do_not_follow_torchs_global_generator() -> None:
    """Reset torch's global generator before each set-up: the Poisson draws and the noise
    still differ, so neither comes from a generator anyone could seed."""
    batches, updates = [], []
    for _ in range(2):
        model, training = _private()
        torch.manual_seed(0)
        batches.append([len(b[0]) for b, _ in zip(training.loader, range(5))])
        training.step(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))  # pure noise
        updates.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
        training.close()
    assert batches[0] != batches[1]
    assert not torch.equal(updates[0], updates[1])
    assert all(bool(u.abs().sum() > 0) for u in updates)


def test_optimizer_and_loader_hold_the_secure_source() -> None:
    _, training = _private()
    assert isinstance(training.optimizer.secure_random, SecureRandom)
    assert training.optimizer.generator is None
    sampler = training.loader.batch_sampler
    assert isinstance(sampler, SecurePoissonSampler) and sampler.generator is None
    assert np.isclose(training.sample_rate, 50 / 500)
    training.close()

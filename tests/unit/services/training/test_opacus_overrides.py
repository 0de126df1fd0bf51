"""The Opacus internals `services/training/_opacus_overrides.py` relies on: the version it was
written against, and every private name it overrides, calls or sets, still there."""

from __future__ import annotations

import inspect

import opacus
import pytest
import torch
from opacus import PrivacyEngine
from opacus.optimizers import DPOptimizer, DPOptimizerFastGradientClipping
from opacus.optimizers import optimizer as opacus_optimizer
from opacus.utils.adaptive_clipping import adaptive_clipping_utils
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from torch import nn

from privet.governance.privacy.secure_random import SecureRandom
from privet.services.training import _opacus_overrides
from privet.services.training._opacus_overrides import (
    OPACUS_VERSION,
    FlatNoise,
    GhostOptimizer,
    SecurePoissonSampler,
    SecurePrivacyEngine,
)

RECHECK = (
    "re-check every override in privet.services.training._opacus_overrides "
    "(services/training/_opacus_overrides.py) against the new Opacus, then update OPACUS_VERSION there"
)


def test_opacus_is_the_version_the_overrides_were_written_against() -> None:
    if opacus.__version__ != OPACUS_VERSION:
        pytest.fail(f"Opacus is {opacus.__version__}, the overrides were written against {OPACUS_VERSION}: {RECHECK}")


def test_the_private_helpers_it_calls_exist() -> None:
    for name in ("_check_processed_flag", "_mark_as_processed"):
        assert callable(getattr(opacus_optimizer, name, None)), f"opacus.optimizers.optimizer.{name} is gone: {RECHECK}"
        assert getattr(_opacus_overrides, name) is getattr(opacus_optimizer, name)


@pytest.mark.parametrize(
    ("base", "name"),
    [
        (DPOptimizer, "add_noise"),
        (DPOptimizer, "scale_grad"),
        (DPOptimizerFastGradientClipping, "accumulate"),
        (PrivacyEngine, "_prepare_data_loader"),
        (PrivacyEngine, "_prepare_optimizer"),
    ],
)
def test_every_overridden_method_still_exists(base: type, name: str) -> None:
    assert callable(getattr(base, name, None)), f"{base.__qualname__}.{name} is gone: {RECHECK}"


def test_make_private_still_goes_through_the_overridden_methods() -> None:
    # Were Opacus to build its loader or optimizer another way, its own torch-generator
    # ones would come back silently.
    source = inspect.getsource(PrivacyEngine.make_private)
    for call in ("self._prepare_data_loader(", "self._prepare_optimizer("):
        assert call in source, f"PrivacyEngine.make_private no longer calls {call}...): {RECHECK}"
    # The sampling rate the stand-in loader's length sets.
    assert "1 / len(data_loader)" in inspect.getsource(PrivacyEngine.make_private_with_epsilon), RECHECK


@pytest.mark.parametrize(
    ("method", "keywords"),
    [
        ("_prepare_data_loader", {"poisson_sampling", "distributed"}),
        (
            "_prepare_optimizer",
            {"optimizer", "noise_multiplier", "max_grad_norm", "expected_batch_size", "loss_reduction", "distributed", "clipping", "grad_sample_mode"},
        ),
    ],
)
def test_the_private_methods_take_the_keywords_the_overrides_read(method: str, keywords: set[str]) -> None:
    params = inspect.signature(getattr(PrivacyEngine, method)).parameters
    assert keywords <= set(params), f"PrivacyEngine.{method} now takes {sorted(params)}: {RECHECK}"


def test_the_optimizer_attributes_it_reads_and_sets_exist() -> None:
    layer = nn.Linear(3, 2)
    optimizer = DPOptimizer(torch.optim.SGD(layer.parameters(), lr=0.1), noise_multiplier=1.0, max_grad_norm=1.0, expected_batch_size=4)
    for name in ("params", "accumulated_iterations"):  # properties (the second needs a backward pass)
        assert isinstance(inspect.getattr_static(DPOptimizer, name, None), property), f"DPOptimizer.{name} is gone: {RECHECK}"
    for name in ("noise_multiplier", "max_grad_norm", "expected_batch_size", "loss_reduction", "original_optimizer"):
        assert hasattr(optimizer, name), f"DPOptimizer.{name} is gone: {RECHECK}"
    # Opacus hangs the clipped sum on each parameter; FlatNoise.add_noise reads it there.
    assert all(hasattr(p, "summed_grad") for p in optimizer.params), f"DPOptimizer no longer sets p.summed_grad: {RECHECK}"
    # The adaptive-clipping marker FlatNoise refuses: still the attribute Opacus sets.
    assert "_adjusted_noise_multiplier" in inspect.getsource(adaptive_clipping_utils), RECHECK
    assert issubclass(GhostOptimizer, DPOptimizerFastGradientClipping) and issubclass(FlatNoise, DPOptimizer)


def test_the_sampler_sets_every_attribute_opacus_init_sets() -> None:
    # SecurePoissonSampler skips Opacus's __init__ and sets its attributes by hand.
    theirs = set(vars(UniformWithReplacementSampler(num_samples=10, sample_rate=0.5)))
    ours = set(vars(SecurePoissonSampler(num_samples=10, sample_rate=0.5, random=SecureRandom()))) - {"_random"}
    assert theirs == ours, f"UniformWithReplacementSampler.__init__ now sets {sorted(theirs)}: {RECHECK}"


@pytest.mark.filterwarnings("ignore:Secure RNG turned off")
def test_the_engine_is_still_opacus_engine() -> None:
    assert issubclass(SecurePrivacyEngine, PrivacyEngine)
    assert hasattr(PrivacyEngine(accountant="rdp"), "dataset"), f"PrivacyEngine.dataset is gone: {RECHECK}"

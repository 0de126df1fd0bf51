"""PRIVATE: Privet's overrides of Opacus internals. Re-check every one on an Opacus upgrade.

Written against Opacus 1.6.0 (`OPACUS_VERSION`). They override private methods, bypass a
constructor and touch attributes Opacus does not document, all of which may change in any
release without notice; `tests/unit/services/training/test_opacus_overrides.py` fails loudly, naming
this module, as soon as the installed Opacus is another version, and checks that every
private name used here still exists. Only `services/training/dp.py` imports this module.

Why each override exists:

- `FlatNoise.add_noise` (overrides `DPOptimizer.add_noise`): Opacus draws the noise one
  parameter tensor at a time, from a torch generator, plus a zero tensor each. Here it is one
  draw for all parameters of a device and dtype, from the job's `SecureRandom` (AES-CTR,
  never seedable): same law, N(0, (σC)²) per coordinate. Touches Opacus's private helpers
  `opacus.optimizers.optimizer._check_processed_flag` / `_mark_as_processed`, the
  `summed_grad` attribute Opacus hangs on each parameter, and refuses the optimizer if
  adaptive clipping set its private `_adjusted_noise_multiplier` (its σ would be ignored).
- `FlatNoise.scale_grad` (overrides `DPOptimizer.scale_grad`): one in-place `_foreach_div_`
  instead of a Python loop; same divisor (`expected_batch_size * accumulated_iterations`).
- `GhostOptimizer.accumulate` (overrides `DPOptimizerFastGradientClipping.accumulate`):
  a detached clone of `p.grad` where Opacus deep-copies it; same values, far cheaper.
- `SecurePoissonSampler` (subclasses `UniformWithReplacementSampler`, skips its `__init__`):
  draws the Poisson mask from `SecureRandom`, not a torch generator; and accepts an empty
  dataset, which Opacus refuses (refusing would tell that a job's filters left no row). It
  sets by hand the attributes Opacus's `__init__` sets (`num_samples`, `sample_rate`,
  `generator`, `steps`), which `BatchMemoryManager` reads.
- `SecurePrivacyEngine._prepare_data_loader` / `._prepare_optimizer` (override the private
  `PrivacyEngine` methods `make_private` calls): build the sampler and optimizers above and
  refuse every other set-up, so no path falls back to Opacus's own torch-generator ones.
  Sets `PrivacyEngine.dataset` as Opacus's own method does.
- `BatchCount`: a stand-in batch sampler whose only job is its length, from which
  `make_private_with_epsilon` derives the sampling rate (`1 / len(data_loader)`) before
  `_prepare_data_loader` replaces the loader; it is never iterated.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any, cast

import torch
from opacus import PrivacyEngine
from opacus.optimizers import DPOptimizer, DPOptimizerFastGradientClipping
from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from torch.utils.data import DataLoader, Sampler

from privet.governance.privacy.secure_random import SecureRandom

__all__ = [
    "OPACUS_VERSION",
    "BatchCount",
    "FlatNoise",
    "GhostOptimizer",
    "HooksOptimizer",
    "SecurePoissonSampler",
    "SecurePrivacyEngine",
]

#: The Opacus release every override here was written and checked against.
OPACUS_VERSION = "1.6.0"


# -- leaner optimizers ------------------------------------------------------------------------


class FlatNoise(DPOptimizer):
    """One Gaussian draw for all parameters from the job's `SecureRandom`; in-place
    scaling. Same law as Opacus's. Mixed in ahead of an Opacus optimizer class, whose
    methods `super()` reaches. `secure_random` must be set before the first step."""

    secure_random: SecureRandom

    def add_noise(self) -> None:
        if hasattr(self, "_adjusted_noise_multiplier"):
            raise RuntimeError("adaptive clipping is not supported")  # Privet never builds it
        params = self.params
        std = self.noise_multiplier * self.max_grad_norm
        # list[Any]: Opacus hangs `summed_grad` on each parameter, which torch's Parameter type does not declare.
        groups: dict[tuple[torch.device, torch.dtype], list[Any]] = {}
        for p in params:
            groups.setdefault((p.device, p.dtype), []).append(p)
        for (device, dtype), group in groups.items():
            total = sum(p.numel() for p in group)
            if std == 0:
                noise = torch.zeros(total, device=device, dtype=dtype)
            else:
                noise = self.secure_random.normal(total, std, device=device, dtype=dtype)
            offset = 0
            for p in group:
                _check_processed_flag(p.summed_grad)
                n = p.numel()
                p.grad = (p.summed_grad.reshape(-1) + noise[offset : offset + n]).view_as(p)
                offset += n
                _mark_as_processed(p.summed_grad)

    def scale_grad(self) -> None:
        if self.loss_reduction == "mean":
            torch._foreach_div_([p.grad for p in self.params], self.expected_batch_size * self.accumulated_iterations)


class HooksOptimizer(FlatNoise):
    """Per-sample gradients materialised by Opacus's hooks (grad_sample_mode "hooks")."""


class GhostOptimizer(FlatNoise, DPOptimizerFastGradientClipping):
    """Ghost clipping (grad_sample_mode "ghost", and "bk", which keeps this optimizer)."""

    def accumulate(self) -> None:
        for p in self.params:
            if p.summed_grad is not None:
                p.summed_grad.add_(p.grad)
            else:
                # p.grad is rebuilt by the next backward pass; a detached clone is all
                # Opacus's deepcopy achieved, at a fraction of the cost.
                p.summed_grad = p.grad.detach().clone()


# -- sampling -----------------------------------------------------------------------------------


class BatchCount(Sampler[list[int]]):
    """A batch sampler that only states how many batches an epoch has (Opacus derives the
    sampling rate from it and replaces the sampler before anything is drawn)."""

    def __init__(self, batches: int) -> None:
        self._batches = max(1, batches)

    def __len__(self) -> int:
        return self._batches

    def __iter__(self) -> Iterator[list[int]]:
        raise RuntimeError("never iterated: the Poisson sampler replaces it")


class SecurePoissonSampler(UniformWithReplacementSampler):
    """Opacus's Poisson sampler (each row independently with probability q, int(1/q)
    batches an epoch), drawing from a `SecureRandom` instead of a torch generator."""

    def __init__(self, *, num_samples: int, sample_rate: float, random: SecureRandom) -> None:
        # Not Opacus's __init__: it refuses an empty dataset, and a job whose filters left
        # no training row must still run (refusing it would tell that no row was left).
        self.num_samples, self.sample_rate, self.generator = num_samples, sample_rate, None
        self.steps = int(1 / sample_rate)
        self._random = random

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(self.steps):
            mask = self._random.bernoulli_mask(self.num_samples, self.sample_rate)
            yield mask.nonzero(as_tuple=False).reshape(-1).tolist()


# -- the engine -----------------------------------------------------------------------------------


class SecurePrivacyEngine(PrivacyEngine):
    """Opacus's engine, building the optimizers and Poisson loader above (flat,
    single-process clipping) so that all randomness comes from `random`."""

    def __init__(self, *, accountant: str, random: SecureRandom) -> None:
        super().__init__(accountant=accountant, secure_mode=False)
        self._random = random

    def _prepare_data_loader(self, data_loader: DataLoader, *, poisson_sampling: bool, distributed: bool, **kwargs: Any) -> DataLoader:
        if not poisson_sampling or distributed:
            raise RuntimeError("only single-process Poisson sampling is supported")
        self.dataset = data_loader.dataset
        # Opacus's own Poisson loader draws from a torch generator: build the secure one.
        # The rows come out of TensorRows.__getitems__ as tensors, empty draws included.
        sample_rate = 1 / len(data_loader)
        dataset = data_loader.dataset
        rows = len(cast(Sized, dataset))  # a TensorRows: torch's Dataset type declares no __len__
        secure = DataLoader(
            dataset,
            batch_sampler=SecurePoissonSampler(num_samples=rows, sample_rate=sample_rate, random=self._random),
            collate_fn=data_loader.collate_fn,
        )
        secure.sample_rate = sample_rate  # read by dp.make_private
        return secure

    # The optimizers this engine builds, by grad_sample_mode, and for which set-up (a
    # subclass for DPDDP-wrapped models swaps in Opacus's distributed ones).
    OPTIMIZERS: dict[str, type[DPOptimizer]] = {}
    DISTRIBUTED = False

    def _prepare_optimizer(self, *, optimizer: torch.optim.Optimizer, **kwargs: Any) -> DPOptimizer:
        mode = kwargs.get("grad_sample_mode", "hooks")
        simple = kwargs.get("clipping", "flat") == "flat" and bool(kwargs.get("distributed", False)) == self.DISTRIBUTED
        cls = (self.OPTIMIZERS or {"ghost": GhostOptimizer, "hooks": HooksOptimizer}).get(mode)
        if cls is None or not simple:
            # Opacus's own optimizers draw from torch generators: never fall back to them.
            raise RuntimeError(f"unsupported DP optimizer set-up (mode {mode!r}, clipping {kwargs.get('clipping')!r})")
        if isinstance(optimizer, DPOptimizer):
            optimizer = optimizer.original_optimizer
        dp_optimizer = cls(
            optimizer=optimizer,
            noise_multiplier=kwargs["noise_multiplier"],
            max_grad_norm=kwargs["max_grad_norm"],
            expected_batch_size=kwargs["expected_batch_size"],
            loss_reduction=kwargs.get("loss_reduction", "mean"),
            generator=None,
            secure_mode=False,
        )
        dp_optimizer.secure_random = self._random
        return dp_optimizer

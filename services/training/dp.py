"""DP-SGD with Opacus: the privacy engine set-up and one training step, per gradient mode.

`make_private(...)` runs Opacus's `make_private_with_epsilon` (Poisson sampling, the
named accountant, flat clipping at `max_grad_norm`) and returns a `PrivateTraining`
whose `step(x, y)` does one physical batch. Three ways to clip per-sample gradients:

- ``hooks``: Opacus materialises every per-sample gradient (batch × parameters floats).
- ``ghost``: Opacus's ghost clipping: per-sample norms without per-sample gradients,
  then a second backward pass over the reweighted loss.
- ``bk``: ghost clipping's norms with the clipped sum formed directly from the saved
  activations and output gradients, in one backward pass (`clipping.BookkeepingClipper`);
  for models made only of linear layers. Sampling, noise, scaling and accounting are
  Opacus's own, from the same `make_private_with_epsilon` call as ``ghost``.

`FASTEST_MODE` records which one to use per architecture, from `tests/bench/train.py`.

Opacus's optimizers draw the noise one parameter tensor at a time (plus a zero tensor
each) and deep-copy every gradient; the subclasses in `_opacus_overrides` (the one place
that overrides Opacus internals, pinned to an Opacus version) draw it once for all
parameters from the same distribution, N(0, (σC)²) per coordinate, and clone instead of
deep-copying.

Noise and Poisson sampling come from a `SecureRandom` (AES-CTR under a key from the OS
CSPRNG, never recorded), never from a seedable generator: a released model must not be
reproducible from its data and any recorded value. Every optimizer and loader Opacus would
build otherwise is refused, so no path falls back to torch's generators.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from opacus import PrivacyEngine
from opacus.optimizers import DPOptimizer
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from privet.governance.errors import InvalidArgument
from privet.governance.privacy.accounting import accountant_names, calibrate_noise_multiplier
from privet.governance.privacy.secure_random import SecureRandom
from privet.services.training._opacus_overrides import BatchCount, SecurePrivacyEngine
from privet.services.training.clipping import BookkeepingClipper, supports_bookkeeping

__all__ = [
    "CALIBRATIONS",
    "FASTEST_MODE",
    "GRAD_SAMPLE_MODES",
    "PrivateTraining",
    "TensorRows",
    "choose_grad_sample_mode",
    "make_private",
    "plain_step_fn",
    "quiet_hook_warnings",
]

GRAD_SAMPLE_MODES = ("bk", "ghost", "hooks")

#: Modes per architecture, fastest first, measured with `python -m tests.bench.train`
#: (2-core CPU, Opacus 1.6, torch 2.13, batch 256; DP step / plain step): mlp bk 1.5×,
#: ghost 2.9×, hooks 8.3×; logreg bk 1.5×, hooks 2.4×, ghost 2.7×. The first mode the
#: model supports is used: `bk` needs linear layers only (not an mlp with layer_norm).
#: text-minilm (`python -m tests.bench.train_text`, batch 32, 64 tokens, last layer +
#: head trained): ghost 1.34×, hooks 1.33× — a tie, as the frozen encoder's forward pass
#: dominates both; ghost keeps no per-sample gradients (hooks holds 32 × 1.8 M floats).
FASTEST_MODE: dict[str, tuple[str, ...]] = {
    "logreg": ("bk", "hooks", "ghost"),
    "mlp": ("bk", "ghost", "hooks"),
    "text-minilm": ("ghost", "hooks"),
    # LoRA/head/last-k fine-tuning trains ~1 % of the parameters: per-sample gradients are
    # small, and ghost's second backward pass through the frozen body costs more
    # (tests/bench/finetune.py, CPU: hooks 1.09-1.24×, ghost 1.67-1.78× a plain step).
    "transformer": ("hooks", "ghost"),
}

#: "accountant": σ is what make_private_with_epsilon finds for the chosen accountant.
#: "conservative": σ is raised, if needed, until every registered accountant stays within
#: the target — the ledger charges the most conservative figure, so this is what keeps a
#: finished job's charge within its reservation.
CALIBRATIONS = ("conservative", "accountant")


def choose_grad_sample_mode(arch: str, model: nn.Module) -> str:
    """The fastest mode measured for `arch` that `model` supports."""
    for mode in FASTEST_MODE.get(arch, ("ghost",)):
        if mode != "bk" or supports_bookkeeping(model):
            return mode
    return "ghost"


class TensorRows(Dataset):
    """Rows of (features, label) tensors that hands out a whole batch in one indexing
    operation (`__getitems__`), instead of one Python call per row."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        if features.shape[0] != labels.shape[0]:
            raise ValueError("features and labels differ in length")
        self.features = features
        self.labels = labels

    def __len__(self) -> int:
        return self.features.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features[index], self.labels[index]

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long, device=self.features.device)
        return self.features.index_select(0, index), self.labels.index_select(0, index)


def _keep_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return batch


# -- the training set-up ------------------------------------------------------------------


@dataclass
class PrivateTraining:
    """A model, optimizer and Poisson data loader made private by Opacus.

    `loader` yields logical batches; iterate it through Opacus's `BatchMemoryManager`
    with `optimizer` and call `step` on each physical batch.
    """

    mode: str
    module: nn.Module  # what to call for the forward pass (Opacus's wrapper for hooks/ghost)
    optimizer: DPOptimizer
    loader: DataLoader
    engine: PrivacyEngine
    accountant: str
    sample_rate: float
    expected_batch_size: int
    steps_per_epoch: int
    planned_steps: int  # the horizon σ was calibrated for: int(epochs / sample_rate)
    _criterion: Any = None
    _clipper: BookkeepingClipper | None = None
    # Each row's loss (rows,): cross entropy on class labels, or a causal LM's own loss.
    _per_row: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = functools.partial(F.cross_entropy, reduction="none")

    @property
    def noise_multiplier(self) -> float:
        return float(self.optimizer.noise_multiplier)

    @property
    def max_grad_norm(self) -> float:
        return float(self.optimizer.max_grad_norm)

    @property
    def steps(self) -> int:
        """Noisy steps taken so far, from the accountant's own history."""
        return sum(int(n) for _, _, n in self.engine.accountant.history)

    def history(self) -> list[tuple[float, float, int]]:
        return [(float(s), float(q), int(n)) for s, q, n in self.engine.accountant.history]

    def step(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Forward, clip, and `optimizer.step()` on one physical batch. The optimizer adds
        noise and moves the weights only on the last physical batch of a logical one.
        Returns the batch's summed loss (a detached tensor, so no device sync): 0, never NaN,
        for an empty batch, which Poisson sampling draws now and then.

        In hooks and ghost modes torch warns once that full backward hooks fire without
        input gradients; that is expected (inputs are data) — see `quiet_hook_warnings`."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.mode == "bk":
            assert self._clipper is not None
            self._clipper.start()
            loss = self._per_row(self.module(features), labels)
            self._clipper.backward(loss)
            total = loss.detach().sum()
        elif self.mode == "ghost":
            loss = self._criterion(self.module(features), labels)
            loss.backward()
            total = loss.loss_per_sample.detach().sum()
        else:
            per_row = self._per_row(self.module(features), labels)
            # The mean, except that a Poisson draw may be empty: 0/1, not mean()'s NaN.
            (per_row.sum() / max(per_row.shape[0], 1)).backward()
            total = per_row.detach().sum()
        self.optimizer.step()
        return total

    def close(self) -> None:
        """Take the clipping hooks off the model (the optimizer keeps working on its
        parameters, so the trained weights stay in the caller's model)."""
        if self._clipper is not None:
            self._clipper.remove()
        else:
            cleanup = getattr(self.module, "cleanup", None)
            if cleanup is not None:
                cleanup()


def make_private(
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: TensorRows,
    batch_size: int,
    epochs: int,
    target_epsilon: float,
    delta: float,
    max_grad_norm: float,
    accountant: str,
    mode: str,
    calibration: str = "conservative",
    public_rows: int | None = None,
) -> PrivateTraining:
    """Make `model`/`optimizer` private over `train` with Opacus, for `epochs` epochs of
    Poisson-sampled batches of expected size `batch_size`, spending at most
    `target_epsilon` at `delta`. Noise and sampling draw from a fresh `SecureRandom`
    made here and kept nowhere else: nothing the caller holds can reproduce them.

    `public_rows`: the row count the sampling rate (1/⌈public_rows/batch_size⌉), the step
    count and the expected batch are set from, so that none of them is a function of the
    exact count; each row is still drawn with that rate. None: `len(train)`.

    Raises InvalidArgument("target_epsilon") when Opacus cannot reach the target with
    any noise multiplier up to its ceiling; ("accountant"), ("grad_sample_mode") or
    ("calibration") for unknown names.
    """
    if accountant not in accountant_names():
        raise InvalidArgument(
            "accountant", f"unknown accountant {accountant!r}; known: {', '.join(accountant_names())}"
        )
    if mode not in GRAD_SAMPLE_MODES:
        raise InvalidArgument("grad_sample_mode", f"must be one of {', '.join(GRAD_SAMPLE_MODES)}, got {mode!r}")
    if calibration not in CALIBRATIONS:
        raise InvalidArgument("calibration", f"must be one of {', '.join(CALIBRATIONS)}, got {calibration!r}")
    if mode == "bk" and not supports_bookkeeping(model):
        raise InvalidArgument("grad_sample_mode", "bk needs a model made only of linear layers")

    rows = public_rows if public_rows is not None else len(train)
    # Opacus reads the sampling rate off the loader's length; only that length is used.
    base_loader = DataLoader(train, batch_sampler=BatchCount(-(-rows // batch_size)), collate_fn=cast(Any, _keep_batch))
    with warnings.catch_warnings():
        # "Secure RNG turned off" and Opacus's notes on optional features: not actionable here.
        warnings.simplefilter("ignore")
        engine = SecurePrivacyEngine(accountant=accountant, random=SecureRandom())
        try:
            made = engine.make_private_with_epsilon(
                module=model,
                optimizer=optimizer,
                criterion=task_loss(model)[0],
                data_loader=base_loader,
                target_epsilon=float(target_epsilon),
                target_delta=float(delta),
                epochs=int(epochs),
                max_grad_norm=float(max_grad_norm),
                poisson_sampling=True,  # the accountants assume it; never turned off
                grad_sample_mode="hooks" if mode == "hooks" else "ghost",
                wrap_model=mode != "bk",
            )
        except ValueError as exc:
            if "privacy budget is too low" in str(exc):
                raise InvalidArgument(
                    "target_epsilon",
                    f"{target_epsilon} is out of reach at δ = {delta} with any amount of noise: too few rows "
                    "for this batch size and number of epochs, or ε too small for the accountant",
                ) from None
            raise
    criterion = None
    if mode == "hooks":
        module, dp_optimizer, loader = made
    else:
        module, dp_optimizer, criterion, loader = made
    clipper = None
    if mode == "bk":
        # Opacus attached ghost-clipping hooks to the model; the book-keeping clipper
        # replaces them, and keeps Opacus's optimizer for noise, scaling and accounting.
        module.cleanup()
        module = model
        criterion = None
        clipper = BookkeepingClipper(model, max_grad_norm=max_grad_norm)

    sample_rate = float(loader.sample_rate)
    planned_steps = int(epochs / sample_rate)  # exactly Opacus's calibration horizon
    # Opacus sets the gradient's divisor from the exact count; the public one serves as well.
    dp_optimizer.expected_batch_size = int(rows * sample_rate)
    if calibration == "conservative":
        sigma = max(
            float(dp_optimizer.noise_multiplier),
            calibrate_noise_multiplier(target_epsilon=target_epsilon, delta=delta, sample_rate=sample_rate, steps=planned_steps),
        )
        # The accountant's step hook reads this attribute at every step, so the history
        # (and so the reported ε) follows the noise actually added.
        dp_optimizer.noise_multiplier = sigma

    steps_per_epoch = len(loader.batch_sampler)
    if steps_per_epoch * epochs > planned_steps:
        # Opacus's sampler runs int(1/q) steps an epoch, never more than the horizon
        # σ was calibrated for; running past it would overspend the target.
        raise RuntimeError(f"{epochs} epochs of {steps_per_epoch} steps exceed the calibrated {planned_steps}")

    return PrivateTraining(
        mode=mode,
        module=module,
        optimizer=dp_optimizer,
        loader=loader,
        engine=engine,
        accountant=accountant,
        sample_rate=sample_rate,
        expected_batch_size=int(dp_optimizer.expected_batch_size),
        steps_per_epoch=steps_per_epoch,
        planned_steps=planned_steps,
        _criterion=criterion,
        _clipper=clipper,
        _per_row=task_loss(model)[1],
    )


def task_loss(model: nn.Module) -> tuple[nn.Module, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """The criterion (for Opacus's ghost clipping) and the per-row loss a model trains with:
    cross entropy on class labels, or, for a causal language model (a fine-tuned
    transformer whose task is causal-lm), next-token cross entropy averaged over each row's
    own tokens, where the "labels" are the token ids themselves."""
    if getattr(model, "task", None) == "causal-lm":
        from privet.governance.architectures.pretrained_causal import CausalLMLoss, causal_lm_loss_per_sample

        pad = int(model.pad_id)  # type: ignore[arg-type]
        return CausalLMLoss(pad), functools.partial(causal_lm_loss_per_sample, pad_id=pad)
    return nn.CrossEntropyLoss(), functools.partial(F.cross_entropy, reduction="none")


@contextlib.contextmanager
def quiet_hook_warnings() -> Iterator[None]:
    """Silence torch's note that Opacus's full backward hooks fire on module outputs only
    (the model's input is data and needs no gradient), for the duration of a loop."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
        yield


def plain_step_fn(
    model: nn.Module, optimizer: torch.optim.Optimizer
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The same model's non-private step (for benchmarks): forward, backward, step."""
    per_row_loss = task_loss(model)[1]

    def step(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        per_row = per_row_loss(model(features), labels)
        per_row.mean().backward()
        optimizer.step()
        return per_row.detach().sum()

    return step

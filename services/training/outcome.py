"""What a DP training run returns: its guarantee, the integrity verdict and the result.

`guarantee_of(training, config)` reads the (ε, δ) guarantee of the noisy steps taken off
Opacus's accountant (and every registered accountant, for the ledger's conservative
charge); `judge_integrity` decides, on DP figures only, whether the model may be registered.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch

from privet.governance.privacy.accounting import Mechanism, conservative_epsilon
from privet.governance.privacy.guarantee import DPGuarantee
from privet.governance.privacy.releases import Release
from privet.services.training.dp import PrivateTraining
from privet.services.training.evaluation import Metrics
from privet.services.training.train_config import TrainConfig

__all__ = [
    "MAX_ACCURACY_NOISE",
    "MAX_WEIGHT",
    "DPGuarantee",
    "Integrity",
    "TrainResult",
    "TrainingAborted",
    "guarantee_of",
    "judge_integrity",
]

#: The largest noise (standard deviation) on held-out accuracy a registrable model may
#: have: beyond it, the DP metrics say nothing about the model.
MAX_ACCURACY_NOISE = 0.1
#: Weights beyond this have diverged (the held-out loss that used to tell is not published).
MAX_WEIGHT = 1e6


class TrainingAborted(Exception):
    """The run failed part-way. `guarantee` covers the noisy steps it took before the
    failure (ε = 0 if none), which the ledger must still charge; the cause is chained."""

    def __init__(self, guarantee: DPGuarantee, cause: BaseException) -> None:
        super().__init__(f"training failed after {guarantee.steps} noisy steps: {type(cause).__name__}: {cause}")
        self.guarantee = guarantee


@dataclass(frozen=True)
class Integrity:
    """Whether the model may be registered; `reasons` says why not, in plain words."""

    ok: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainResult:
    """The outcome of `train_dp`. `registrable` is False for a cancelled run or a model
    that failed its integrity check; `refusal` then says why."""

    weights: bytes
    model: dict[str, Any]  # ModelSpec metadata: rebuild with governance.architectures.load_model
    metrics: Metrics
    guarantee: DPGuarantee
    integrity: Integrity
    evaluation: Release  # the DP release the metrics came from
    cancelled: bool
    epochs_completed: int
    grad_sample_mode: str
    device: str
    seed: int
    elapsed_s: float

    @property
    def registrable(self) -> bool:
        return not self.cancelled and self.integrity.ok

    @property
    def refusal(self) -> str | None:
        if self.cancelled:
            return f"cancelled after {self.guarantee.steps} of the planned steps"
        if not self.integrity.ok:
            return "; ".join(self.integrity.reasons)
        return None


def guarantee_of(training: PrivateTraining, config: TrainConfig) -> DPGuarantee:
    steps = training.steps
    history = training.history()
    if steps and history != [(training.noise_multiplier, training.sample_rate, steps)]:
        # The accountant saw something other than one homogeneous mechanism; refuse to
        # summarise it as one (never expected: σ and q are fixed for the run).
        raise RuntimeError(f"unexpected accountant history {history!r}")
    epsilon = 0.0
    if steps:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numerical notes from the accountants' internals
            # Opacus's own accountant, fed by the optimizer's step hook during the run.
            epsilon = float(training.engine.accountant.get_epsilon(delta=float(config.delta)))
    mechanism = Mechanism(training.noise_multiplier, training.sample_rate, steps, float(config.delta))
    worst, worst_name = conservative_epsilon(mechanism)
    return DPGuarantee(
        epsilon=epsilon,
        delta=float(config.delta),
        noise_multiplier=training.noise_multiplier,
        sample_rate=training.sample_rate,
        steps=steps,
        accountant=training.accountant,
        max_grad_norm=training.max_grad_norm,
        target_epsilon=float(config.target_epsilon),
        conservative_epsilon=worst,
        conservative_accountant=worst_name,
    )


def judge_integrity(model: torch.nn.Module, metrics: Metrics, guarantee: DPGuarantee) -> Integrity:
    """Whether to register. Decided on DP figures only (the metrics are DP; the weights
    are DP-SGD's output), so the decision itself publishes nothing more."""
    reasons = []
    if guarantee.epsilon > guarantee.target_epsilon:
        # Cannot happen by construction (σ is calibrated for at least the steps run);
        # checked because a model over its target must never be registered.
        reasons.append(f"spent ε {guarantee.epsilon} exceeds the target {guarantee.target_epsilon}")
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        reasons.append("weights contain NaN or infinity")
    elif (largest := max((float(p.detach().abs().max()) for p in model.parameters() if p.numel()), default=0.0)) > MAX_WEIGHT:
        reasons.append(f"training diverged: a weight of magnitude {largest:.3g} (limit {MAX_WEIGHT:g})")
    # Both figures are noisy: refuse only what the noise cannot explain (two standard
    # deviations), so a good model on a small held-out split is not thrown away by chance.
    if metrics.accuracy_noise > MAX_ACCURACY_NOISE:
        reasons.append(
            f"the held-out evaluation is too noisy to judge the model (accuracy ±{metrics.accuracy_noise:.3f}, "
            f"limit {MAX_ACCURACY_NOISE}): more rows or a larger ε are needed"
        )
    elif not metrics.accuracy + 2 * metrics.accuracy_noise > metrics.baseline_accuracy:
        reasons.append(
            f"held-out accuracy {metrics.accuracy:.4f} is not better than the majority-class "
            f"baseline {metrics.baseline_accuracy:.4f} (both DP, noise ±{metrics.accuracy_noise:.4f})"
        )
    return Integrity(ok=not reasons, reasons=tuple(reasons))

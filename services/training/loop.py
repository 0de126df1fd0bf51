"""The DP-SGD loop: epochs of Poisson-sampled logical batches, split into physical ones by
Opacus's BatchMemoryManager, with cancellation polled only between noisy steps and
throttled progress reports (`Progress`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from opacus.utils.batch_memory_manager import BatchMemoryManager

from privet.governance.privacy.accounting import Mechanism, conservative_epsilon
from privet.services.training.dp import PrivateTraining, quiet_hook_warnings
from privet.services.training.train_config import TrainConfig

__all__ = ["Progress", "ProgressReporter", "run_dp_sgd"]


@dataclass(frozen=True)
class Progress:
    """A progress report. `epoch` is 1-based; `step` counts noisy (logical) steps done, of
    `total_steps` planned; `epsilon` is what the steps so far spent by the conservative
    figure (the largest any registered accountant gives: the one the ledger charges and the
    registry states); `eta_s` estimates the seconds left (0 until a step has been timed).
    No training loss: it is an exact function of private batches."""

    epoch: int
    epochs: int
    step: int
    total_steps: int
    epsilon: float
    eta_s: float


class ProgressReporter:
    """Throttled progress: ε is a numerical computation (tens to hundreds of ms for every
    accountant together), so reports come at most every `interval` seconds and never cost
    more than ~10% of the run — except the first, right after the first noisy step, so that
    the step count and the ETA move as soon as training does."""

    def __init__(self, training: PrivateTraining, config: TrainConfig, callback: Callable[[Progress], None]) -> None:
        self._training = training
        self._config = config
        self._callback = callback
        self._interval = config.progress_interval_s
        self._last = time.monotonic()
        self._start = self._last
        self._cache: tuple[int, float] = (0, 0.0)
        self._reported = False

    def epsilon(self, steps: int) -> float:
        if steps != self._cache[0]:
            t = self._training
            mechanism = Mechanism(t.noise_multiplier, t.sample_rate, steps, float(self._config.delta))
            self._cache = (steps, conservative_epsilon(mechanism)[0])
        return self._cache[1]

    def due(self) -> bool:
        return not self._reported or time.monotonic() - self._last >= self._interval

    def report(self, epoch: int) -> None:
        t = self._training
        steps = t.steps
        began = time.monotonic()
        eps = self.epsilon(steps)
        cost = time.monotonic() - began
        self._interval = max(self._config.progress_interval_s, 10 * cost)
        now = time.monotonic()
        total = t.steps_per_epoch * self._config.epochs
        elapsed = now - self._start
        # 0 (unknown) before the first step: never NaN, which JSON and the bar cannot show.
        eta = elapsed / steps * (total - steps) if steps else 0.0
        self._last = now
        self._reported = self._reported or steps > 0
        self._callback(
            Progress(epoch=epoch, epochs=self._config.epochs, step=steps, total_steps=total, epsilon=eps, eta_s=max(eta, 0.0))
        )


def run_dp_sgd(
    training: PrivateTraining,
    config: TrainConfig,
    on_progress: Callable[[Progress], None],
    should_stop: Callable[[], bool],
) -> tuple[bool, int]:
    """The DP-SGD loop. Returns (cancelled, epochs completed)."""
    reporter = ProgressReporter(training, config, on_progress)
    training.module.train()
    with quiet_hook_warnings():
        return _epochs(training, config, reporter, should_stop)


def _epochs(
    training: PrivateTraining, config: TrainConfig, reporter: ProgressReporter, should_stop: Callable[[], bool]
) -> tuple[bool, int]:
    for epoch in range(1, config.epochs + 1):
        with BatchMemoryManager(
            data_loader=training.loader,
            max_physical_batch_size=config.max_physical_batch_size,
            optimizer=training.optimizer,
        ) as loader:
            boundary_steps = training.steps
            at_boundary = True
            for features, labels in loader:
                # Between noisy steps: the only place a run may stop. A partly
                # accumulated logical batch is never released, so costs nothing.
                if at_boundary and should_stop():
                    reporter.report(epoch)
                    return True, epoch - 1
                training.step(features, labels)
                at_boundary = training.steps != boundary_steps
                if at_boundary:
                    boundary_steps = training.steps
                    if reporter.due():
                        reporter.report(epoch)
        reporter.report(epoch)
    return False, config.epochs

"""The training worker's core: one differentially private training run, no I/O.

`train_dp(config, train, valid, on_progress=..., should_stop=...)` trains a catalog
model with DP-SGD (Opacus, Poisson sampling, calibrated to a target ε at δ), evaluates
it on the held-out split, checks its integrity and returns everything the registry and
the budget ledger need: safetensors weights, metrics and the full DP guarantee.

Privacy unit: one row of `train`. The run refuses (InvalidArgument naming the field)
anything the guarantee cannot honestly cover: δ ≥ 1/n, a batch larger than the data,
sampling other than Poisson, or a target ε so small for this much data that the noise
would drown every gradient.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from opacus.utils.batch_memory_manager import BatchMemoryManager

from privet.governance.architectures import ModelSpec, export_weights, input_kind
from privet.governance.errors import InvalidArgument
from privet.governance.privacy.accounting import (
    DEFAULT_ACCOUNTANT,
    Mechanism,
    accountant_names,
    conservative_epsilon,
    epsilon_for,
)
from privet.governance.privacy.plan import HISTOGRAM
from privet.governance.privacy.releases import Release
from privet.governance.privacy.secure_random import SecureRandom
from privet.services.training.dp import (
    CALIBRATIONS,
    GRAD_SAMPLE_MODES,
    PrivateTraining,
    TensorRows,
    choose_grad_sample_mode,
    make_private,
    quiet_hook_warnings,
)
from privet.services.training.evaluation import Metrics, evaluate
from privet.services.training.process_settings import DEVICES, resolve_device, tune_allocator

__all__ = [
    "DPGuarantee",
    "DataRefused",
    "Integrity",
    "Metrics",
    "Progress",
    "TrainConfig",
    "TrainResult",
    "TrainingAborted",
    "train_dp",
]

_OPTIMIZERS = ("adam", "sgd")
#: The largest noise (standard deviation) on held-out accuracy a registrable model may
#: have: beyond it, the DP metrics say nothing about the model.
MAX_ACCURACY_NOISE = 0.1
#: Weights beyond this have diverged (the held-out loss that used to tell is not published).
MAX_WEIGHT = 1e6


@dataclass(frozen=True)
class TrainConfig:
    """What to train and under which guarantee. Validated by `train_dp`.

    `batch_size` is the expected logical batch (Poisson sampling draws each row with
    probability about batch_size / n); `max_physical_batch_size` caps what is in memory
    at once (Opacus's BatchMemoryManager splits larger draws). `calibration` is
    "conservative" (default: σ large enough for every registered accountant, which the
    ledger's conservative charge needs) or "accountant" (σ for `accountant` alone).
    `max_noise_to_batch` bounds σ / expected batch — the noise's standard deviation on
    the averaged gradient, per coordinate, in units of the clipping norm — beyond which
    the dataset is refused as too small for the requested ε. Runs that learn anything
    sit far below the default 0.1 (σ ≈ 1 at batch 256 is 0.004).
    """

    arch: str
    epochs: int
    batch_size: int
    learning_rate: float
    target_epsilon: float
    delta: float
    max_grad_norm: float = 1.0
    evaluation_epsilon: float = 0.1  # the held-out metrics' own ε (a DP histogram), not in target_epsilon
    hparams: Mapping[str, Any] = field(default_factory=dict)
    n_classes: int | None = None  # None: 1 + the largest label in train and valid
    optimizer: str = "adam"
    accountant: str = DEFAULT_ACCOUNTANT
    calibration: str = "conservative"
    poisson_sampling: bool = True
    device: str = "auto"
    seed: int = 0  # initial weights only; never the noise or the sampling
    max_physical_batch_size: int = 1024
    # The number of training rows everything public is set from (sampling rate, steps,
    # checks and messages): a DP count from the job's preparation. None: the exact count
    # (for callers whose row count is public).
    public_rows: int | None = None
    grad_sample_mode: str = "auto"
    max_noise_to_batch: float = 0.1
    progress_interval_s: float = 1.0
    num_threads: int | None = None
    tune_allocator: bool = True


@dataclass(frozen=True)
class Progress:
    """A progress report. `epoch` is 1-based; `step` counts noisy (logical) steps done;
    `epsilon` is what the accountant says the steps so far spent; `eta_s` estimates the
    seconds left. No training loss: it is an exact function of private batches."""

    epoch: int
    epochs: int
    step: int
    total_steps: int
    epsilon: float
    eta_s: float


@dataclass(frozen=True)
class DPGuarantee:
    """The (ε, δ) guarantee of a run, with everything needed to recompute it.

    `epsilon` is the spend according to `accountant`, the one Opacus tracked during
    training; `conservative_epsilon` is the largest figure any registered accountant
    gives (named by `conservative_accountant`), which the ledger charges.
    """

    epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    accountant: str
    max_grad_norm: float
    target_epsilon: float
    conservative_epsilon: float
    conservative_accountant: str
    privacy_unit: str = "row"
    poisson_sampling: bool = True

    def mechanism(self) -> Mechanism:
        return Mechanism(
            noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate, steps=self.steps, delta=self.delta
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DataRefused(InvalidArgument):
    """The training or held-out tensors themselves are unfit (non-finite features, bad
    labels): a refusal that depends on the private rows, unlike every other refusal here,
    which depends on the configuration and public counts only."""


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


# -- validation ---------------------------------------------------------------------------


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(name, f"must be a positive integer, got {value!r}")
    return value


def _positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InvalidArgument(name, f"must be a finite number > 0, got {value!r}")
    return float(value)


def _check_split(name: str, split: Any, kind: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
    """`kind` is the architecture's input kind: "features" (a float matrix) or "tokens"
    (int64 token ids, 0 = padding)."""
    try:
        features, labels = split
    except (TypeError, ValueError):
        raise DataRefused(name, "must be a (features, labels) pair of tensors") from None
    if kind == "tokens":
        if not isinstance(features, torch.Tensor) or features.dim() != 2 or features.dtype != torch.int64:
            raise DataRefused(name, "token ids must be a 2-D int64 tensor (rows × tokens)")
        if features.numel() and int(features.min()) < 0:
            raise DataRefused(name, "token ids must be >= 0")
    elif not isinstance(features, torch.Tensor) or features.dim() != 2 or not features.is_floating_point():
        raise DataRefused(name, "features must be a 2-D floating-point tensor (rows × features)")
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.dtype not in (torch.int32, torch.int64):
        raise DataRefused(name, "labels must be a 1-D integer tensor of class indices")
    if features.shape[0] != labels.shape[0]:
        raise DataRefused(name, f"{features.shape[0]} feature rows but {labels.shape[0]} labels")
    # No rows is allowed: a job's filters may leave none, and refusing would say so. Its
    # steps are then noise alone and its evaluation a histogram of noise.
    if labels.numel() and int(labels.min()) < 0:
        raise DataRefused(name, "labels must be class indices >= 0")
    if kind == "tokens":
        return features, labels.to(torch.int64)
    if not bool(torch.isfinite(features).all()):
        raise DataRefused(name, "features contain NaN or infinity")
    return features.to(torch.float32), labels.to(torch.int64)


def _validate(config: TrainConfig, n_rows: int) -> None:
    _positive_int("epochs", config.epochs)
    _positive_int("batch_size", config.batch_size)
    _positive_int("max_physical_batch_size", config.max_physical_batch_size)
    _positive_float("learning_rate", config.learning_rate)
    _positive_float("target_epsilon", config.target_epsilon)
    _positive_float("max_grad_norm", config.max_grad_norm)
    _positive_float("max_noise_to_batch", config.max_noise_to_batch)
    _positive_float("evaluation_epsilon", config.evaluation_epsilon)
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
        raise InvalidArgument("seed", f"must be an integer >= 0, got {config.seed!r}")
    if not config.poisson_sampling:
        raise InvalidArgument(
            "poisson_sampling", "the privacy accounting assumes Poisson sampling; training without it is refused"
        )
    if config.accountant not in accountant_names():
        raise InvalidArgument(
            "accountant", f"must be one of {', '.join(accountant_names())}, got {config.accountant!r}"
        )
    if config.calibration not in CALIBRATIONS:
        raise InvalidArgument("calibration", f"must be one of {', '.join(CALIBRATIONS)}, got {config.calibration!r}")
    if config.optimizer not in _OPTIMIZERS:
        raise InvalidArgument("optimizer", f"must be one of {', '.join(_OPTIMIZERS)}, got {config.optimizer!r}")
    if config.grad_sample_mode not in ("auto", *GRAD_SAMPLE_MODES):
        raise InvalidArgument("grad_sample_mode", f"must be auto or one of {', '.join(GRAD_SAMPLE_MODES)}")
    if config.device not in DEVICES:
        raise InvalidArgument("device", f"must be one of {', '.join(DEVICES)}, got {config.device!r}")
    if config.num_threads is not None:
        _positive_int("num_threads", config.num_threads)
    if config.batch_size > n_rows:
        raise InvalidArgument("batch_size", f"{config.batch_size} is larger than the {n_rows} training rows")
    if not (isinstance(config.delta, (int, float)) and 0 < config.delta < 1):
        raise InvalidArgument("delta", f"must be in (0, 1), got {config.delta!r}")
    if config.delta >= 1.0 / n_rows:
        raise InvalidArgument(
            "delta",
            f"{config.delta} is not below 1/n = {1.0 / n_rows:.3g} for {n_rows} training rows "
            "(δ ≥ 1/n allows publishing a row outright)",
        )


# -- the run ----------------------------------------------------------------------------------


class _Reporter:
    """Throttled progress: ε is a numerical computation (tens of ms for PRV), so reports
    come at most every `interval` seconds and never cost more than ~10% of the run."""

    def __init__(self, training: PrivateTraining, config: TrainConfig, callback: Callable[[Progress], None]) -> None:
        self._training = training
        self._config = config
        self._callback = callback
        self._interval = config.progress_interval_s
        self._last = time.monotonic()
        self._start = self._last
        self._cache: tuple[int, float] = (0, 0.0)

    def epsilon(self, steps: int) -> float:
        if steps != self._cache[0]:
            t = self._training
            mechanism = Mechanism(t.noise_multiplier, t.sample_rate, steps, float(self._config.delta))
            self._cache = (steps, epsilon_for(mechanism, t.accountant))
        return self._cache[1]

    def due(self) -> bool:
        return time.monotonic() - self._last >= self._interval

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
        eta = elapsed / steps * (total - steps) if steps else float("nan")
        self._last = now
        self._callback(
            Progress(epoch=epoch, epochs=self._config.epochs, step=steps, total_steps=total, epsilon=eps, eta_s=max(eta, 0.0))
        )


def _guarantee(training: PrivateTraining, config: TrainConfig) -> DPGuarantee:
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


def _integrity(model: torch.nn.Module, metrics: Metrics, guarantee: DPGuarantee) -> Integrity:
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


def train_dp(
    config: TrainConfig,
    train: tuple[torch.Tensor, torch.Tensor],
    valid: tuple[torch.Tensor, torch.Tensor],
    *,
    on_progress: Callable[[Progress], None],
    should_stop: Callable[[], bool],
) -> TrainResult:
    """Train `config.arch` on `train` under (target ε, δ)-DP and evaluate it on `valid`.

    `train`/`valid` are (inputs, int64 class indices); inputs are what the architecture
    takes (`governance.architectures.input_kind`): float features (rows × features), or int64
    token ids (rows × tokens, 0 = padding) for text-minilm. Calls
    `on_progress` from time to time and at each epoch end; polls `should_stop` before
    every noisy step and, when it answers True, stops there: the result is then
    `cancelled` and its guarantee covers the steps actually taken (ε = 0 if none).

    `should_stop` is polled exactly once before each noisy step and nowhere else, so the
    number of times it has answered False bounds the steps taken from above: a worker
    that keeps that count where its parent can read it (shared memory) lets the service
    charge a worker killed mid-run without ever under-charging.

    Raises InvalidArgument naming the field for any bad or unsafe request (see module
    docstring); nothing has been spent when it does. Raises TrainingAborted, carrying
    the guarantee of the steps already taken, when the run fails after it started.
    """
    started = time.monotonic()
    kind = input_kind(config.arch)
    x_train, y_train = _check_split("train", train, kind)
    x_valid, y_valid = _check_split("valid", valid, kind)
    if config.public_rows is not None:
        _positive_int("public_rows", config.public_rows)
    n_rows = config.public_rows or x_train.shape[0]
    _validate(config, n_rows)
    if x_valid.shape[1] != x_train.shape[1]:
        raise InvalidArgument("valid", f"{x_valid.shape[1]} features, but train has {x_train.shape[1]}")
    largest = max((int(y.max()) for y in (y_train, y_valid) if y.numel()), default=-1)
    n_classes = config.n_classes if config.n_classes is not None else largest + 1
    if n_classes < 2:
        raise InvalidArgument("n_classes", "at least two classes are needed (state them when the splits may be empty)")
    if n_classes <= largest:
        raise InvalidArgument("n_classes", f"{n_classes} classes, but a label is {largest}")
    spec = ModelSpec.create(config.arch, int(x_train.shape[1]), int(n_classes), **dict(config.hparams))

    device = resolve_device(config.device)
    if config.tune_allocator and device.type == "cpu":
        tune_allocator()
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)

    # The public seed fixes the initial weights only. Poisson sampling and noise come
    # from a secret CSPRNG inside make_private, so two runs of the same job differ.
    torch.manual_seed(config.seed)
    model = spec.build().to(device)
    torch.seed()  # nothing after initialisation follows from the public seed
    mode = config.grad_sample_mode
    if mode == "auto":
        mode = choose_grad_sample_mode(config.arch, model)
    # Frozen parameters (text-minilm's pre-trained lower layers) get no gradient, no noise.
    trained = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(trained, lr=config.learning_rate)
    else:
        optimizer = torch.optim.SGD(trained, lr=config.learning_rate, momentum=0.9)

    training = make_private(
        model=model,
        optimizer=optimizer,
        train=TensorRows(x_train.to(device), y_train.to(device)),
        batch_size=config.batch_size,
        epochs=config.epochs,
        target_epsilon=config.target_epsilon,
        delta=config.delta,
        max_grad_norm=config.max_grad_norm,
        accountant=config.accountant,
        mode=mode,
        calibration=config.calibration,
        public_rows=config.public_rows,
    )
    try:
        ratio = training.noise_multiplier / max(training.expected_batch_size, 1)
        if training.expected_batch_size < 1 or ratio > config.max_noise_to_batch:
            raise InvalidArgument(
                "target_epsilon",
                f"too few rows ({n_rows}) for ε = {config.target_epsilon} at batch {config.batch_size} "
                f"over {config.epochs} epochs: Opacus needs noise multiplier {training.noise_multiplier:.3g}, "
                f"i.e. noise {ratio:.3g}× the clipping norm on each averaged gradient (limit "
                f"{config.max_noise_to_batch}); raise target_epsilon or batch_size, train fewer epochs, or use more rows",
            )
        try:
            cancelled, epochs_completed = _run(training, config, on_progress, should_stop)
        except Exception as exc:
            raise TrainingAborted(_guarantee(training, config), exc) from exc
    finally:
        training.close()

    # Token inputs run a transformer: attention memory grows with rows × tokens², so
    # evaluate in smaller batches than a tabular model's.
    eval_batch = 256 if kind == "tokens" else 4096
    evaluation = Release("evaluation", HISTOGRAM, float(config.evaluation_epsilon))
    metrics = evaluate(
        model, x_valid.to(device), y_valid.to(device),
        n_classes=int(n_classes), epsilon=evaluation.epsilon, random=SecureRandom(), batch_size=eval_batch,
    )
    guarantee = _guarantee(training, config)
    return TrainResult(
        weights=export_weights(model),
        model=spec.to_metadata(),
        metrics=metrics,
        guarantee=guarantee,
        integrity=_integrity(model, metrics, guarantee),
        evaluation=evaluation,
        cancelled=cancelled,
        epochs_completed=epochs_completed,
        grad_sample_mode=mode,
        device=str(device),
        seed=config.seed,
        elapsed_s=time.monotonic() - started,
    )


def _run(
    training: PrivateTraining,
    config: TrainConfig,
    on_progress: Callable[[Progress], None],
    should_stop: Callable[[], bool],
) -> tuple[bool, int]:
    """The DP-SGD loop. Returns (cancelled, epochs completed)."""
    reporter = _Reporter(training, config, on_progress)
    training.module.train()
    with quiet_hook_warnings():
        return _epochs(training, config, reporter, should_stop)


def _epochs(
    training: PrivateTraining, config: TrainConfig, reporter: _Reporter, should_stop: Callable[[], bool]
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

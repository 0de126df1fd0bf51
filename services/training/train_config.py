"""What a DP training run is asked to do (`TrainConfig`) and the checks made before it starts.

`validate_config` and `check_split` refuse, with InvalidArgument naming the field, anything
the guarantee cannot honestly cover (see `engine`'s docstring); `DataRefused` is the one
refusal that depends on the private rows themselves. Nothing has been spent when they refuse.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from privet.governance.errors import InvalidArgument
from privet.governance.privacy.accounting import DEFAULT_ACCOUNTANT, accountant_names
from privet.governance.privacy.limits import check_delta_for_rows
from privet.governance.training.job_spec import DEVICES
from privet.services.training.dp import CALIBRATIONS, GRAD_SAMPLE_MODES

__all__ = [
    "OPTIMIZERS",
    "DataRefused",
    "TrainConfig",
    "check_split",
    "positive_float",
    "positive_int",
    "validate_config",
]

OPTIMIZERS = ("adam", "sgd")


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


class DataRefused(InvalidArgument):
    """The training or held-out tensors themselves are unfit (non-finite features, bad
    labels): a refusal that depends on the private rows, unlike every other refusal here,
    which depends on the configuration and public counts only."""


# -- validation ---------------------------------------------------------------------------


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(name, f"must be a positive integer, got {value!r}")
    return value


def positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InvalidArgument(name, f"must be a finite number > 0, got {value!r}")
    return float(value)


def check_split(name: str, split: Any, kind: str = "features", *, sequence_labels: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """`kind` is the architecture's input kind: "features" (a float matrix) or "tokens"
    (int64 token ids, 0 = padding). `sequence_labels`: a causal language model's, whose
    labels are its token ids (the same shape as the features)."""
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
    if sequence_labels:
        if not isinstance(labels, torch.Tensor) or labels.shape != features.shape or labels.dtype != torch.int64:
            raise DataRefused(name, "a language model's labels are its token ids (the features' shape, int64)")
    elif not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.dtype not in (torch.int32, torch.int64):
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


def validate_config(config: TrainConfig, n_rows: int) -> None:
    positive_int("epochs", config.epochs)
    positive_int("batch_size", config.batch_size)
    positive_int("max_physical_batch_size", config.max_physical_batch_size)
    positive_float("learning_rate", config.learning_rate)
    positive_float("target_epsilon", config.target_epsilon)
    positive_float("max_grad_norm", config.max_grad_norm)
    positive_float("max_noise_to_batch", config.max_noise_to_batch)
    positive_float("evaluation_epsilon", config.evaluation_epsilon)
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
    if config.optimizer not in OPTIMIZERS:
        raise InvalidArgument("optimizer", f"must be one of {', '.join(OPTIMIZERS)}, got {config.optimizer!r}")
    if config.grad_sample_mode not in ("auto", *GRAD_SAMPLE_MODES):
        raise InvalidArgument("grad_sample_mode", f"must be auto or one of {', '.join(GRAD_SAMPLE_MODES)}")
    if config.device not in DEVICES:
        raise InvalidArgument("device", f"must be one of {', '.join(DEVICES)}, got {config.device!r}")
    if config.num_threads is not None:
        positive_int("num_threads", config.num_threads)
    if config.batch_size > n_rows:
        raise InvalidArgument("batch_size", f"{config.batch_size} is larger than the {n_rows} training rows")
    check_delta_for_rows("delta", config.delta, n_rows)


@dataclass(frozen=True)
class CheckedRun:
    """A run's request and splits, checked (see `check_run`)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_valid: torch.Tensor
    y_valid: torch.Tensor
    n_rows: int  # what sampling is set from: the public (DP) count when given, else the exact one
    n_classes: int
    spec: Any  # the ModelSpec, its hyperparameters checked
    causal: bool  # a causal language model: its labels are its token ids


def check_run(config: TrainConfig, train: Any, valid: Any) -> CheckedRun:
    """Everything a run refuses before it starts, for one process or many: the splits of
    the architecture's input kind, the configuration, the classes, the hyperparameters.
    InvalidArgument (or DataRefused) naming the field; nothing has been spent."""
    from privet.governance.architectures import ModelSpec, input_kind
    from privet.governance.architectures.finetuned import is_causal_lm

    kind = input_kind(config.arch)
    causal = is_causal_lm(config.arch, dict(config.hparams))
    x_train, y_train = check_split("train", train, kind, sequence_labels=causal)
    x_valid, y_valid = check_split("valid", valid, kind, sequence_labels=causal)
    if config.public_rows is not None:
        positive_int("public_rows", config.public_rows)
    n_rows = config.public_rows or x_train.shape[0]
    validate_config(config, n_rows)
    if x_valid.shape[1] != x_train.shape[1]:
        raise InvalidArgument("valid", f"{x_valid.shape[1]} features, but train has {x_train.shape[1]}")
    largest = max((int(y.max()) for y in (y_train, y_valid) if y.numel()), default=-1)
    n_classes = config.n_classes if config.n_classes is not None else largest + 1
    if n_classes < 2:
        raise InvalidArgument("n_classes", "at least two classes are needed (state them when the splits may be empty)")
    if n_classes <= largest:
        raise InvalidArgument("n_classes", f"{n_classes} classes, but a label is {largest}")
    spec = ModelSpec.create(config.arch, int(x_train.shape[1]), int(n_classes), **dict(config.hparams))
    return CheckedRun(x_train, y_train, x_valid, y_valid, int(n_rows), int(n_classes), spec, causal)

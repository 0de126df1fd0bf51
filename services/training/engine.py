"""The training worker's core: one differentially private training run, no I/O.

`train_dp(config, train, valid, on_progress=..., should_stop=...)` trains a catalog
model with DP-SGD (Opacus, Poisson sampling, calibrated to a target ε at δ), evaluates
it on the held-out split, checks its integrity and returns everything the registry and
the budget ledger need: safetensors weights, metrics and the full DP guarantee.

Privacy unit: one row of `train`. The run refuses (InvalidArgument naming the field)
anything the guarantee cannot honestly cover: δ ≥ 1/n, a batch larger than the data,
sampling other than Poisson, or a target ε so small for this much data that the noise
would drown every gradient.

The parts live beside it: the request and its checks in `train_config`, the loop in
`loop`, the guarantee and the verdict in `outcome`, Opacus's set-up in `dp`. Every name
callers import from here is re-exported.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from privet.governance.architectures import ModelSpec, export_weights, input_kind
from privet.governance.errors import InvalidArgument
from privet.governance.privacy.plan import HISTOGRAM
from privet.governance.privacy.releases import Release
from privet.services.training.dp import TensorRows, choose_grad_sample_mode, make_private
from privet.services.training.evaluation import Metrics, held_out_metrics
from privet.services.training.loop import Progress, run_dp_sgd
from privet.services.training.outcome import (
    MAX_ACCURACY_NOISE,
    MAX_WEIGHT,
    DPGuarantee,
    Integrity,
    TrainingAborted,
    TrainResult,
    guarantee_of,
    judge_integrity,
)
from privet.services.training.process_settings import resolve_device, tune_allocator
from privet.services.training.train_config import DataRefused, TrainConfig, check_run

__all__ = [
    "MAX_ACCURACY_NOISE",
    "MAX_WEIGHT",
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


def build_for_training(config: TrainConfig, spec: ModelSpec, device: torch.device) -> tuple[torch.nn.Module, str, torch.optim.Optimizer]:
    """The model (initial weights from the public seed, and nothing after them), its
    gradient-sample mode and its optimizer over the parameters it trains: what one process
    or every rank of a distributed run starts from."""
    torch.manual_seed(config.seed)
    model = spec.build().to(device)
    torch.seed()  # nothing after initialisation follows from the public seed
    mode = config.grad_sample_mode
    if mode == "auto":
        mode = choose_grad_sample_mode(config.arch, model)
    # Frozen parameters (a base's pre-trained layers) get no gradient, no noise.
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer: torch.optim.Optimizer
    if config.optimizer == "adam":
        optimizer = torch.optim.Adam(trained, lr=config.learning_rate)
    else:
        optimizer = torch.optim.SGD(trained, lr=config.learning_rate, momentum=0.9)
    return model, mode, optimizer


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
    run = check_run(config, train, valid)
    x_train, y_train, x_valid, y_valid = run.x_train, run.y_train, run.x_valid, run.y_valid
    n_rows, n_classes, spec, causal = run.n_rows, run.n_classes, run.spec, run.causal

    device = resolve_device(config.device)
    if config.tune_allocator and device.type == "cpu":
        tune_allocator()
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)

    # The public seed fixes the initial weights only. Poisson sampling and noise come
    # from a secret CSPRNG inside make_private, so two runs of the same job differ.
    model, mode, optimizer = build_for_training(config, spec, device)

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
            cancelled, epochs_completed = run_dp_sgd(training, config, on_progress, should_stop)
        except Exception as exc:
            raise TrainingAborted(guarantee_of(training, config), exc) from exc
    finally:
        training.close()

    # Token inputs run a transformer: attention memory grows with rows × tokens², so
    # evaluate in smaller batches than a tabular model's.
    evaluation = Release("evaluation", HISTOGRAM, float(config.evaluation_epsilon))
    metrics = held_out_metrics(model, x_valid.to(device), y_valid.to(device), token_inputs=kind == "tokens", causal=causal,
                               n_classes=int(n_classes), epsilon=evaluation.epsilon)
    guarantee = guarantee_of(training, config)
    return TrainResult(
        weights=export_weights(model),
        model=spec.to_metadata(),
        metrics=metrics,
        guarantee=guarantee,
        integrity=judge_integrity(model, metrics, guarantee),
        evaluation=evaluation,
        cancelled=cancelled,
        epochs_completed=epochs_completed,
        grad_sample_mode=mode,
        device=str(device),
        seed=config.seed,
        elapsed_s=time.monotonic() - started,
    )

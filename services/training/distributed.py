"""Data-parallel DP-SGD over several processes: one job, one guarantee, noise once per step.

`train_dp_distributed(config, train, valid, world_size=N, ...)` is `engine.train_dp` spread
over N ranks started the way `torchrun` starts them (torch's elastic agent, `elastic_launch`,
with a c10d rendezvous on 127.0.0.1 and spawned processes), each in a `torch.distributed`
process group (gloo on CPU; nccl on CUDA, one device per local rank).

What stays exactly as in one process, so the ledger's single reservation covers the job:

- **One sampling rate, one accountant.** The rows are split into N fixed shards (rank r
  holds rows r, r+N, ...); every rank draws each row of its shard independently with the
  sampling rate of the *whole* dataset (`ShardedSecurePoissonSampler`), so the union of the
  N local batches is a Poisson sample of all the rows at rate q — the mechanism a single
  process runs. σ is calibrated once, in the calling process, from public values only
  (`calibrate`: the same computation `dp.make_private` runs), before anything starts; rank 0's
  accountant is the one the guarantee is read from (`outcome.guarantee_of`).
- **Noise once per step.** Each rank clips its own rows' gradients and sums them; Opacus's
  `DistributedDPOptimizer.add_noise` (opacus/optimizers/ddpoptimizer.py, and its ghost
  twin in ddpoptimizer_fast_gradient_clipping.py) adds the Gaussian noise on rank 0 only;
  `reduce_gradients` then all-reduces the sums and divides by N. Each rank divides by the
  global expected batch over N, so the averaged gradient is (Σ clipped + one N(0, σ²C²)
  draw) / expected batch: the single-process step, with one draw, not N. The draw comes
  from rank 0's `SecureRandom` through Privet's `FlatNoise` (the optimizers below).
- **Cancellation and the step bound.** `should_stop` and `on_progress` run in the calling
  process. Before each noisy step rank 0 asks the caller (a queue round trip), the caller
  polls `should_stop` exactly once, and rank 0 broadcasts the answer to every rank, so all
  ranks step or stop together and the number of False answers bounds the steps taken from
  above, as `train_dp` promises. Progress comes back from rank 0 on the same queue.

Why Privet's own optimizer classes and sampler here (candidates for `_opacus_overrides`,
the one place meant to override Opacus internals, which this change could not edit):
`SecurePrivacyEngine` refuses the distributed set-up on purpose, Opacus's
`DistributedUniformWithReplacementSampler` draws from a torch generator and *skips* empty
draws (a rank that skips one takes fewer steps than its peers: the all-reduces pair up wrong
or hang, and the accountant counts differently per rank), and Opacus's distributed
optimizers would draw noise from a torch generator.

Launching: `launch_ranks` runs any picklable entrypoint on N ranks with torchrun's
environment (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); `max_restarts=0`,
since a restarted rank would run the job's steps again and spend its budget twice.
The agent runs in a helper thread of the caller (it then installs no signal handlers in the
caller, and the calling thread stays free to answer the ranks); orphaned ranks stop on their
own: rank 0 stops when its parent is gone, and the other ranks fail on their next collective
once rank 0 has exited.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import os
import queue
import socket
import tempfile
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterator, Sized
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import torch
import torch.distributed as dist
from opacus.distributed import DifferentiallyPrivateDistributedDataParallel as DPDDP
from opacus.optimizers import DistributedDPOptimizer, DistributedDPOptimizerFastGradientClipping
from opacus.utils.uniform_sampler import DistributedUniformWithReplacementSampler
from torch import nn
from torch.utils.data import DataLoader

from privet.governance.architectures import ModelSpec, export_weights, input_kind
from privet.governance.architectures.finetuned import is_causal_lm
from privet.governance.errors import InvalidArgument
from privet.governance.privacy.accounting import Mechanism, calibrate_noise_multiplier, conservative_epsilon, epsilon_for, noise_multiplier_for
from privet.governance.privacy.plan import HISTOGRAM
from privet.governance.privacy.releases import Release
from privet.governance.privacy.secure_random import SecureRandom
from privet.services.training._opacus_overrides import BatchCount, GhostOptimizer, HooksOptimizer, SecurePrivacyEngine
from privet.services.training.clipping import BookkeepingClipper, supports_bookkeeping
from privet.services.training.dp import GRAD_SAMPLE_MODES, PrivateTraining, TensorRows, quiet_hook_warnings
from privet.services.training.engine import build_for_training
from privet.services.training.evaluation import held_out_metrics
from privet.services.training.loop import Progress, ProgressReporter, _epochs, run_dp_sgd
from privet.services.training.outcome import DPGuarantee, TrainingAborted, TrainResult, guarantee_of, judge_integrity
from privet.services.training.process_settings import resolve_device, tune_allocator
from privet.services.training.train_config import TrainConfig, check_run, positive_int

__all__ = [
    "BACKENDS",
    "Calibration",
    "DistributedSecurePrivacyEngine",
    "SecureDistributedGhostOptimizer",
    "SecureDistributedHooksOptimizer",
    "ShardedSecurePoissonSampler",
    "calibrate",
    "launch_ranks",
    "make_private_distributed",
    "rank_device",
    "train_dp_distributed",
]

BACKENDS = ("gloo", "nccl")

#: How often a waiting process re-checks that its peer is still there.
_POLL_S = 0.05


# -- Opacus's distributed pieces, drawing from SecureRandom ---------------------------------------


class SecureDistributedHooksOptimizer(DistributedDPOptimizer, HooksOptimizer):
    """Opacus's `DistributedDPOptimizer` (noise on rank 0 only, then an all-reduce average)
    whose one noise draw is Privet's `FlatNoise` from the job's `SecureRandom`.

    MRO: DistributedDPOptimizer.add_noise → (rank 0) FlatNoise.add_noise; scale_grad is
    FlatNoise's; step is DistributedDPOptimizer's (pre_step, reduce_gradients, step)."""


class SecureDistributedGhostOptimizer(DistributedDPOptimizerFastGradientClipping, GhostOptimizer):
    """The same for ghost clipping (grad_sample_mode "ghost", and "bk", which keeps it)."""


class ShardedSecurePoissonSampler(DistributedUniformWithReplacementSampler):
    """This rank's part of a Poisson sample of the whole dataset: each row of the rank's
    shard is drawn independently with the global `sample_rate`, from `random`.

    Unlike Opacus's sampler it yields empty draws too (every rank takes exactly
    `int(1 / sample_rate)` logical steps an epoch, so the collectives stay paired), accepts
    an empty shard, and does not reshuffle the shards (each row's inclusion is independent
    of which rank holds it, so the partition does not change the mechanism)."""

    def __init__(self, *, shard_rows: int, total_rows: int, sample_rate: float, rank: int, world_size: int, random: SecureRandom) -> None:
        # Not Opacus's __init__: it reads the process group, refuses an empty dataset and
        # keeps a torch generator. These are the attributes it sets, which Opacus reads.
        self.total_size, self.sample_rate, self.generator = total_rows, sample_rate, None
        self.num_replicas, self.rank, self.epoch = world_size, rank, 0
        self.shuffle, self.shuffle_seed = False, 0
        self.num_samples = shard_rows
        self.num_batches = int(1 / sample_rate)
        self._random = random

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(self.num_batches):
            mask = self._random.bernoulli_mask(self.num_samples, self.sample_rate)
            yield mask.nonzero(as_tuple=False).reshape(-1).tolist()


class DistributedSecurePrivacyEngine(SecurePrivacyEngine):
    """`SecurePrivacyEngine` for a model wrapped in Opacus's DPDDP: the sharded secure
    Poisson loader and the distributed secure optimizers above, and nothing else."""

    OPTIMIZERS = {"ghost": SecureDistributedGhostOptimizer, "hooks": SecureDistributedHooksOptimizer}
    DISTRIBUTED = True

    def __init__(self, *, accountant: str, random: SecureRandom, rank: int, world_size: int, total_rows: int) -> None:
        super().__init__(accountant=accountant, random=random)
        self._secure = random
        self._rank, self._world_size, self._total_rows = rank, world_size, total_rows

    def _prepare_data_loader(self, data_loader: DataLoader, *, poisson_sampling: bool, distributed: bool, **kwargs: Any) -> DataLoader:
        if not poisson_sampling or not distributed:
            raise RuntimeError("only distributed Poisson sampling is supported here (wrap the model in DPDDP)")
        self.dataset = data_loader.dataset
        sample_rate = 1 / len(data_loader)  # the global rate: BatchCount's length is the whole dataset's
        shard = data_loader.dataset
        sampler = ShardedSecurePoissonSampler(
            shard_rows=len(cast(Sized, shard)), total_rows=self._total_rows, sample_rate=sample_rate,
            rank=self._rank, world_size=self._world_size, random=self._secure,
        )
        secure = DataLoader(shard, batch_sampler=sampler, collate_fn=data_loader.collate_fn)
        secure.sample_rate = sample_rate  # read by make_private_distributed
        return secure


def _keep_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return batch


def make_private_distributed(
    *,
    model: DPDDP,
    optimizer: torch.optim.Optimizer,
    shard: TensorRows,
    rows: int,
    batch_size: int,
    epochs: int,
    noise_multiplier: float,
    max_grad_norm: float,
    accountant: str,
    mode: str,
) -> PrivateTraining:
    """This rank's part of a distributed DP-SGD run (inside an initialised process group).

    `model` is wrapped in Opacus's DPDDP (which broadcast rank 0's weights); `shard` is
    this rank's rows; `rows` is the public row count of the *whole* dataset, from which the
    sampling rate (1/⌈rows/batch_size⌉), the steps and the expected batch are set, exactly
    as `dp.make_private` sets them for one process. σ is given (see `calibrate`), never
    recalibrated per rank. The returned `PrivateTraining.step` works as in one process; its
    optimizer step all-reduces, so every rank must call it the same number of times.
    """
    if mode not in GRAD_SAMPLE_MODES:
        raise InvalidArgument("grad_sample_mode", f"must be one of {', '.join(GRAD_SAMPLE_MODES)}, got {mode!r}")
    inner = model.module
    if mode == "bk" and not supports_bookkeeping(inner):
        raise InvalidArgument("grad_sample_mode", "bk needs a model made only of linear layers")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    base_loader = DataLoader(shard, batch_sampler=BatchCount(-(-rows // batch_size)), collate_fn=cast(Any, _keep_batch))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Secure RNG turned off" and notes on optional features
        engine = DistributedSecurePrivacyEngine(accountant=accountant, random=SecureRandom(), rank=rank, world_size=world_size, total_rows=rows)
        made = engine.make_private(
            module=model,
            optimizer=optimizer,
            criterion=nn.CrossEntropyLoss(),
            data_loader=base_loader,
            noise_multiplier=float(noise_multiplier),
            max_grad_norm=float(max_grad_norm),
            poisson_sampling=True,
            grad_sample_mode="hooks" if mode == "hooks" else "ghost",
            wrap_model=mode != "bk",
        )
    criterion = None
    if mode == "hooks":
        module, dp_optimizer, loader = made
    else:
        module, dp_optimizer, criterion, loader = made
    clipper = None
    if mode == "bk":
        module.cleanup()  # Opacus's ghost hooks off; the book-keeping clipper instead (as dp.make_private)
        module = model
        criterion = None
        clipper = BookkeepingClipper(inner, max_grad_norm=max_grad_norm)

    sample_rate = float(loader.sample_rate)
    planned_steps = int(epochs / sample_rate)
    expected = int(rows * sample_rate)  # the global expected batch, as in one process
    # Each rank divides its sum by expected / N; the all-reduce sums N of them and divides
    # by N again: (Σ clipped + noise) / expected, the single-process gradient.
    dp_optimizer.expected_batch_size = cast(Any, expected / world_size)
    steps_per_epoch = len(cast(Sized, loader.batch_sampler))
    if steps_per_epoch * epochs > planned_steps:
        raise RuntimeError(f"{epochs} epochs of {steps_per_epoch} steps exceed the calibrated {planned_steps}")
    return PrivateTraining(
        mode=mode,
        module=module,
        optimizer=dp_optimizer,
        loader=loader,
        engine=engine,
        accountant=accountant,
        sample_rate=sample_rate,
        expected_batch_size=expected,
        steps_per_epoch=steps_per_epoch,
        planned_steps=planned_steps,
        _criterion=criterion,
        _clipper=clipper,
    )


# -- calibration, in the calling process -----------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """The public parameters of the one mechanism a distributed job runs."""

    rows: int  # the public row count everything is set from
    sample_rate: float
    noise_multiplier: float
    expected_batch_size: int
    steps_per_epoch: int
    planned_steps: int


def calibrate(config: TrainConfig, rows: int) -> Calibration:
    """σ, q and the steps for `config` over `rows` public rows: what `dp.make_private` finds
    for one process (Opacus's search for `config.accountant` over int(epochs/q) steps, raised
    to every registered accountant's σ when `calibration` is "conservative"). Raises
    InvalidArgument("target_epsilon") when the target is out of reach."""
    sample_rate = 1 / max(1, -(-rows // config.batch_size))
    planned_steps = int(config.epochs / sample_rate)
    sigma = noise_multiplier_for(
        target_epsilon=float(config.target_epsilon), delta=float(config.delta), sample_rate=sample_rate, steps=planned_steps, accountant=config.accountant
    )
    if config.calibration == "conservative":
        sigma = max(sigma, calibrate_noise_multiplier(target_epsilon=config.target_epsilon, delta=config.delta, sample_rate=sample_rate, steps=planned_steps))
    return Calibration(
        rows=rows,
        sample_rate=sample_rate,
        noise_multiplier=sigma,
        expected_batch_size=int(rows * sample_rate),
        steps_per_epoch=int(1 / sample_rate),
        planned_steps=planned_steps,
    )


def _guarantee(calibration: Calibration, config: TrainConfig, steps: int) -> DPGuarantee:
    """The guarantee of `steps` steps of the job's mechanism, for when rank 0 could not report
    its own (the caller's count of steps it allowed: an upper bound)."""
    mechanism = Mechanism(calibration.noise_multiplier, calibration.sample_rate, steps, float(config.delta))
    worst, worst_name = conservative_epsilon(mechanism)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        epsilon = epsilon_for(mechanism, config.accountant) if steps else 0.0
    return DPGuarantee(
        epsilon=epsilon, delta=float(config.delta), noise_multiplier=calibration.noise_multiplier,
        sample_rate=calibration.sample_rate, steps=steps, accountant=config.accountant,
        max_grad_norm=float(config.max_grad_norm), target_epsilon=float(config.target_epsilon),
        conservative_epsilon=worst, conservative_accountant=worst_name,
    )


# -- launching ranks the way torchrun does -----------------------------------------------------------


def _causal(config: TrainConfig) -> bool:
    """Whether the job trains a causal language model (its labels are its token ids)."""
    return is_causal_lm(config.arch, dict(config.hparams))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _ChildThreadNote(logging.Filter):
    """Drops torch's note that the agent installs no signal handlers from a helper thread:
    on purpose here (see the module docstring), and orphaned ranks stop on their own."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "running on a child thread" not in record.getMessage()


_quiet = False


def _quiet_child_thread_note() -> None:
    global _quiet
    if not _quiet:
        logging.getLogger("torch.distributed.elastic.multiprocessing.api").addFilter(_ChildThreadNote())
        _quiet = True


def _elastic_launch(world_size: int, entrypoint: Callable[..., Any], args: tuple[Any, ...]) -> dict[int, Any]:
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    with tempfile.TemporaryDirectory(prefix="privet-ranks-") as logs:
        config = LaunchConfig(
            min_nodes=1,
            max_nodes=1,
            nproc_per_node=world_size,
            run_id=uuid.uuid4().hex,
            rdzv_backend="c10d",
            rdzv_endpoint=f"127.0.0.1:{_free_port()}",
            rdzv_configs={"timeout": 120},
            max_restarts=0,  # a restarted rank would take the job's steps again
            monitor_interval=0.05,
            start_method="spawn",
            local_addr="127.0.0.1",
            logs_specs=DefaultLogsSpecs(log_dir=logs),
        )
        return cast(dict[int, Any], elastic_launch(config, entrypoint)(*args))


class _Launcher(threading.Thread):
    """Runs torch's elastic agent off the calling thread: the agent then installs no signal
    handlers (it would replace the caller's SIGTERM/SIGINT handlers for good), and the
    calling thread stays free to answer the ranks."""

    def __init__(self, world_size: int, entrypoint: Callable[..., Any], args: tuple[Any, ...]) -> None:
        super().__init__(name="privet-ranks", daemon=True)
        self._world_size, self._entrypoint, self._args = world_size, entrypoint, args
        self.returned: dict[int, Any] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.returned = _elastic_launch(self._world_size, self._entrypoint, self._args)
        except BaseException as exc:
            self.error = exc


def launch_ranks(world_size: int, entrypoint: Callable[..., Any], *args: Any) -> dict[int, Any]:
    """Run `entrypoint(*args)` on `world_size` local ranks started as `torchrun
    --nproc-per-node world_size` starts them: torch's elastic agent, a c10d rendezvous on
    127.0.0.1 at a free port, spawned processes with RANK, LOCAL_RANK, WORLD_SIZE,
    MASTER_ADDR and MASTER_PORT set, no restarts. Blocks until every rank has exited;
    returns each rank's return value by rank. Raises torch's ChildFailedError when a rank
    fails (the agent then stops the others). `entrypoint` and `args` must be picklable."""
    launcher = _start(world_size, entrypoint, args)
    while launcher.is_alive():
        launcher.join(_POLL_S)
    if launcher.error is not None:
        raise launcher.error
    return launcher.returned


def _start(world_size: int, entrypoint: Callable[..., Any], args: tuple[Any, ...]) -> _Launcher:
    positive_int("world_size", world_size)
    _quiet_child_thread_note()
    launcher = _Launcher(world_size, entrypoint, args)
    launcher.start()
    return launcher


def rank_device(device_type: str, local_rank: int) -> torch.device:
    """The device of the rank with `local_rank`: cuda:LOCAL_RANK on CUDA, else the CPU."""
    return torch.device("cuda", local_rank) if device_type == "cuda" else torch.device("cpu")


# -- one rank -----------------------------------------------------------------------------------------


@dataclass
class _Job:
    """What every rank receives (pickled once per rank by the spawn)."""

    config: TrainConfig
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_valid: torch.Tensor
    y_valid: torch.Tensor
    n_classes: int
    calibration: Calibration
    backend: str
    device_type: str
    threads: int
    parent_pid: int
    events: Any  # rank → caller: ("ask",), ("progress", Progress), ("result", TrainResult), ("aborted", DPGuarantee, str), ("failed", str)
    answers: Any  # caller → rank 0: one bool per ("ask",)
    # A fine-tuning job's ranks each fetch its base from the registry of this PRIVET_HOME.
    base_home: str | None = None


def _rank_main(job: _Job) -> None:
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    device = rank_device(job.device_type, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        if job.base_home is not None:
            from privet.services.common.bases import use_registry_for_bases

            use_registry_for_bases(job.base_home, "training")
        dist.init_process_group(job.backend, timeout=timedelta(minutes=10))
        try:
            _train_rank(job, rank, device)
        finally:
            dist.destroy_process_group()
    except BaseException as exc:
        if not isinstance(exc, _Reported):
            job.events.put(("failed", f"rank {rank}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
        raise  # the agent sees the failure and stops the other ranks


class _Reported(Exception):
    """A failure rank 0 has already reported with its guarantee."""


def _ask_caller(job: _Job) -> bool:
    """Rank 0: the caller's `should_stop()` for the next step (True once the caller is gone)."""
    job.events.put(("ask",))
    while True:
        try:
            return bool(job.answers.get(timeout=_POLL_S))
        except queue.Empty:
            if os.getppid() != job.parent_pid:  # orphans are re-parented
                return True


class _SilentReporter(ProgressReporter):
    """A rank other than 0 reports nothing: rank 0 reports for the job. Used with loop's own
    `_epochs` (private; `run_dp_sgd` taking an optional reporter would make it public)."""

    def due(self) -> bool:
        return False

    def report(self, epoch: int) -> None:
        return None


def _train_rank(job: _Job, rank: int, device: torch.device) -> None:
    config, calibration = job.config, job.calibration
    world_size = dist.get_world_size()
    if device.type == "cpu" and config.tune_allocator:
        tune_allocator()
    torch.set_num_threads(job.threads)
    spec = ModelSpec.create(config.arch, int(job.x_train.shape[1]), job.n_classes, **dict(config.hparams))
    model, mode, optimizer = build_for_training(config, spec, device)  # DPDDP broadcasts rank 0's weights anyway
    shard = TensorRows(job.x_train[rank::world_size].to(device), job.y_train[rank::world_size].to(device))
    training = make_private_distributed(
        model=DPDDP(model), optimizer=optimizer, shard=shard, rows=calibration.rows, batch_size=config.batch_size,
        epochs=config.epochs, noise_multiplier=calibration.noise_multiplier, max_grad_norm=config.max_grad_norm,
        accountant=config.accountant, mode=mode,
    )
    flag = torch.zeros(1, dtype=torch.int64, device=device)

    def should_stop() -> bool:  # a collective: every rank calls it before each noisy step
        if rank == 0:
            flag.fill_(int(_ask_caller(job)))
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def on_progress(p: Progress) -> None:
        job.events.put(("progress", p))

    try:
        try:
            if rank == 0:
                cancelled, epochs_completed = run_dp_sgd(training, config, on_progress, should_stop)
            else:
                # The same loop (so the same collectives, in the same order), without the
                # reports, whose ε would be computed for nothing (seconds at the first one).
                training.module.train()
                with quiet_hook_warnings():
                    cancelled, epochs_completed = _epochs(training, config, _SilentReporter(training, config, on_progress), should_stop)
        finally:
            training.close()
        if rank != 0:
            return
        evaluation = Release("evaluation", HISTOGRAM, float(config.evaluation_epsilon))
        metrics = held_out_metrics(model, job.x_valid.to(device), job.y_valid.to(device), token_inputs=input_kind(config.arch) == "tokens",
                                   causal=_causal(config), n_classes=job.n_classes, epsilon=evaluation.epsilon)
        guarantee = guarantee_of(training, config)
        result = TrainResult(
            weights=export_weights(model), model=spec.to_metadata(), metrics=metrics, guarantee=guarantee,
            integrity=judge_integrity(model, metrics, guarantee), evaluation=evaluation, cancelled=cancelled,
            epochs_completed=epochs_completed, grad_sample_mode=mode, device=str(device), seed=config.seed, elapsed_s=0.0,
        )
        job.events.put(("result", result))
    except Exception as exc:
        if rank != 0:
            raise
        job.events.put(("aborted", guarantee_of(training, config), f"{type(exc).__name__}: {exc}"))
        raise _Reported(str(exc)) from exc


# -- the calling process ------------------------------------------------------------------------------


@dataclass
class _Outcome:
    allowed: int = 0  # the times should_stop answered False: a bound on the steps taken
    result: TrainResult | None = None
    aborted: tuple[DPGuarantee, str] | None = None
    failures: list[str] = dataclasses.field(default_factory=list)
    callback_error: Exception | None = None


def _serve(
    launcher: _Launcher, job: _Job, outcome: _Outcome, on_progress: Callable[[Progress], None], should_stop: Callable[[], bool], *, stopping: bool
) -> None:
    """Answer the ranks until every one has exited; once `stopping`, answer every ask with
    True and drop progress (the callbacks failed, or the caller is unwinding)."""
    while True:
        try:
            message = job.events.get(timeout=_POLL_S)
        except queue.Empty:
            if not launcher.is_alive():
                return
            continue
        kind = message[0]
        if kind == "ask":
            answer = True
            if not stopping:
                try:
                    answer = bool(should_stop())
                except Exception as exc:
                    outcome.callback_error, stopping = exc, True
            if not answer:
                outcome.allowed += 1
            job.answers.put(answer)
        elif kind == "progress":
            if not stopping:
                try:
                    on_progress(message[1])
                except Exception as exc:
                    outcome.callback_error, stopping = exc, True
        elif kind == "result":
            outcome.result = message[1]
        elif kind == "aborted":
            outcome.aborted = (message[1], message[2])
        elif kind == "failed":
            outcome.failures.append(message[1])


def train_dp_distributed(
    config: TrainConfig,
    train: tuple[torch.Tensor, torch.Tensor],
    valid: tuple[torch.Tensor, torch.Tensor],
    *,
    world_size: int,
    on_progress: Callable[[Progress], None],
    should_stop: Callable[[], bool],
    backend: str = "gloo",
    base_home: str | None = None,
) -> TrainResult:
    """`engine.train_dp` over `world_size` data-parallel ranks on this machine (see the module
    docstring): the same inputs, checks, result and guarantee — one sampling rate over all the
    rows, one σ, one accountant, the noise added once per step.

    `on_progress` and `should_stop` are called in this process (this thread), `should_stop`
    exactly once before each noisy step and nowhere else. Raises InvalidArgument naming the
    field (also "world_size" and "backend") before any process starts, so nothing has been
    spent; TrainingAborted, with the guarantee of the steps taken (rank 0's accountant, or the
    count of steps this process allowed when rank 0 could not report), when the run fails once
    it has started (a callback raising included: every rank is stopped first); RuntimeError
    when a rank fails before rank 0 reached its loop and no step was allowed.
    """
    started = time.monotonic()
    positive_int("world_size", world_size)
    if backend not in BACKENDS:
        raise InvalidArgument("backend", f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
    run = check_run(config, train, valid)  # hparams checked here
    x_train, y_train, x_valid, y_valid, n_rows, n_classes = run.x_train, run.y_train, run.x_valid, run.y_valid, run.n_rows, run.n_classes
    device = resolve_device(config.device)
    if device.type == "cuda" and world_size > torch.cuda.device_count():
        raise InvalidArgument("world_size", f"{world_size} ranks, but this machine has {torch.cuda.device_count()} CUDA devices")
    if backend == "nccl" and device.type != "cuda":
        raise InvalidArgument("backend", "nccl needs CUDA devices; use gloo on the CPU")

    calibration = calibrate(config, n_rows)
    ratio = calibration.noise_multiplier / max(calibration.expected_batch_size, 1)
    if calibration.expected_batch_size < 1 or ratio > config.max_noise_to_batch:
        raise InvalidArgument(
            "target_epsilon",
            f"too few rows ({n_rows}) for ε = {config.target_epsilon} at batch {config.batch_size} "
            f"over {config.epochs} epochs: Opacus needs noise multiplier {calibration.noise_multiplier:.3g}, "
            f"i.e. noise {ratio:.3g}× the clipping norm on each averaged gradient (limit "
            f"{config.max_noise_to_batch}); raise target_epsilon or batch_size, train fewer epochs, or use more rows",
        )

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = config.num_threads or (max(1, cores // world_size) if device.type == "cpu" else 1)
    ctx = mp.get_context("spawn")
    job = _Job(
        config=config, x_train=x_train, y_train=y_train, x_valid=x_valid, y_valid=y_valid, n_classes=int(n_classes),
        calibration=calibration, backend=backend, device_type=device.type, threads=threads, parent_pid=os.getpid(),
        events=ctx.Queue(), answers=ctx.Queue(), base_home=base_home,
    )
    outcome = _Outcome()
    launcher = _start(world_size, _rank_main, (job,))
    try:
        try:
            _serve(launcher, job, outcome, on_progress, should_stop, stopping=False)
        except BaseException:
            _serve(launcher, job, outcome, on_progress, should_stop, stopping=True)  # stop every rank first
            raise
        launcher.join()
    finally:
        for channel in (job.events, job.answers):
            channel.cancel_join_thread()  # an answer rank 0 never read must not hold this process
            channel.close()

    if outcome.result is not None and outcome.callback_error is None:
        result = outcome.result
        if result.guarantee.steps > outcome.allowed:
            raise RuntimeError(f"rank 0 took {result.guarantee.steps} steps, but only {outcome.allowed} were allowed")
        return dataclasses.replace(result, elapsed_s=time.monotonic() - started)
    if outcome.result is not None or outcome.aborted is not None:
        guarantee = outcome.result.guarantee if outcome.result is not None else cast(tuple[DPGuarantee, str], outcome.aborted)[0]
    else:
        guarantee = _guarantee(calibration, config, outcome.allowed)
    cause: BaseException
    if outcome.callback_error is not None:
        cause = outcome.callback_error
    else:
        details = [outcome.aborted[1]] if outcome.aborted is not None else []
        details += outcome.failures or ([f"{type(launcher.error).__name__}: {launcher.error}"] if launcher.error else ["no rank reported"])
        cause = RuntimeError("; ".join(details))
    if outcome.aborted is None and outcome.allowed == 0 and outcome.callback_error is None:
        raise RuntimeError(f"distributed training failed before any noisy step: {cause}") from cause
    raise TrainingAborted(guarantee, cause) from cause

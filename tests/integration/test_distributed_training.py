"""train_dp_distributed: two CPU ranks on gloo, started as torchrun starts them.

One sampling rate, one σ and one accountant for the whole job (the guarantee of a
single-process run of the same config); the noise added once per step, not once per rank;
a noiseless, unclipped distributed step equal to a single-process step on the union of the
shards; cancellation from the calling process stopping every rank, the guarantee covering
the steps taken.
"""

from __future__ import annotations

import math
import os
import pathlib
from dataclasses import replace
from typing import Any

import pytest
import torch
import torch.distributed as dist
from opacus.distributed import DifferentiallyPrivateDistributedDataParallel as DPDDP
from torch import nn

from privet.governance.architectures import load_model
from privet.governance.errors import InvalidArgument
from privet.governance.privacy.accounting import Mechanism, epsilon_for
from privet.services.training.distributed import launch_ranks, make_private_distributed, train_dp_distributed
from privet.services.training.dp import TensorRows, make_private
from privet.services.training.engine import Progress, TrainConfig, train_dp

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::RuntimeWarning")]

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROWS, VALID, FEATURES = 400, 200, 6

# RDP calibration: several times faster than PRV's, and the same code path.
QUICK = TrainConfig(
    arch="logreg", epochs=1, batch_size=64, learning_rate=0.1, target_epsilon=3.0, delta=1e-4,
    accountant="rdp", calibration="accountant", device="cpu", num_threads=1,
)


@pytest.fixture(autouse=True)
def _importable_from_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Spawned ranks unpickle this module's probe by name: they need the repository root
    # on sys.path, which spawn copies from this process.
    monkeypatch.syspath_prepend(str(ROOT))


def _data(rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, FEATURES, generator=g)
    y = (x[:, 0] - 0.7 * x[:, 1] + 0.2 * torch.randn(rows, generator=g) > 0.3).long()
    return x, y


def test_a_distributed_run_has_the_guarantee_of_a_single_process_run() -> None:
    train, valid = _data(ROWS, 0), _data(VALID, 1)
    progress: list[Progress] = []
    asked: list[bool] = []

    def should_stop() -> bool:
        asked.append(False)
        return False

    result = train_dp_distributed(QUICK, train, valid, world_size=2, on_progress=progress.append, should_stop=should_stop)
    single = train_dp(QUICK, train, valid, on_progress=lambda p: None, should_stop=lambda: False)

    got, want = result.guarantee, single.guarantee
    assert (got.sample_rate, got.steps, got.noise_multiplier) == (want.sample_rate, want.steps, want.noise_multiplier)
    assert (got.epsilon, got.conservative_epsilon) == (want.epsilon, want.conservative_epsilon)
    assert got.sample_rate == 1 / math.ceil(ROWS / QUICK.batch_size)  # the whole dataset's rate, not a shard's
    assert got.steps == int(1 / got.sample_rate) * QUICK.epochs
    assert len(asked) == got.steps  # polled once before each noisy step, in this process
    assert not result.cancelled and result.epochs_completed == QUICK.epochs
    assert progress and progress[-1].step == got.steps and progress[-1].total_steps == got.steps
    model = load_model("logreg", result.model, result.weights)
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


def test_should_stop_in_the_caller_stops_every_rank_and_the_guarantee_covers_the_steps_taken() -> None:
    train, valid = _data(ROWS, 2), _data(VALID, 3)
    answers: list[bool] = []

    def should_stop() -> bool:
        answers.append(len(answers) >= 3)  # three steps, then stop
        return answers[-1]

    result = train_dp_distributed(QUICK, train, valid, world_size=2, on_progress=lambda p: None, should_stop=should_stop)
    g = result.guarantee
    assert result.cancelled and not result.registrable and result.epochs_completed == 0
    assert answers == [False, False, False, True]
    assert g.steps == 3
    assert g.epsilon == pytest.approx(epsilon_for(Mechanism(g.noise_multiplier, g.sample_rate, 3, QUICK.delta), "rdp"), rel=1e-9)
    assert 0 < g.epsilon < QUICK.target_epsilon


def test_bad_requests_are_refused_before_any_rank_starts() -> None:
    train, valid = _data(ROWS, 0), _data(VALID, 1)
    for kwargs, field in (({"world_size": 0}, "world_size"), ({"world_size": 2, "backend": "mpi"}, "backend"), ({"world_size": 2, "backend": "nccl"}, "backend")):
        with pytest.raises(InvalidArgument) as refused:
            train_dp_distributed(QUICK, train, valid, on_progress=lambda p: None, should_stop=lambda: False, **kwargs)
        assert refused.value.field == field
    with pytest.raises(InvalidArgument) as refused:
        train_dp_distributed(replace(QUICK, batch_size=ROWS + 1), train, valid, world_size=2, on_progress=lambda p: None, should_stop=lambda: False)
    assert refused.value.field == "batch_size"


# -- one step, instrumented, on each rank ------------------------------------------------------------

PROBE_ROWS, PROBE_BATCH, PROBE_IN, PROBE_OUT = 256, 64, 64, 32  # q = 1/4, expected batch 64, 2080 weights
SIGMA, CLIP = 1.0, 1.0


class _CountingRandom:
    """The job's SecureRandom, counting the Gaussian draws (a rank's noise draws)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.draws = 0

    def normal(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        self.draws += 1
        return self.inner.normal(*args, **kwargs)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(PROBE_IN, PROBE_OUT)


def _rows() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return torch.randn(PROBE_ROWS, PROBE_IN, generator=g), torch.randint(0, PROBE_OUT, (PROBE_ROWS,), generator=g)


def _distributed(mode: str, *, sigma: float, clip: float, shard: TensorRows) -> tuple[nn.Module, Any]:
    model = _model()
    training = make_private_distributed(
        model=DPDDP(model), optimizer=torch.optim.SGD(model.parameters(), lr=1.0), shard=shard, rows=PROBE_ROWS,
        batch_size=PROBE_BATCH, epochs=1, noise_multiplier=sigma, max_grad_norm=clip, accountant="rdp", mode=mode,
    )
    return model, training


def _probe() -> dict[str, Any]:
    """On each rank, per gradient mode: (1) one step on an empty batch, so the averaged
    gradient is the noise alone: its std and this rank's draw count; (2) one noiseless,
    unclipped step on this rank's half of fixed rows: the weights after it (rank 0 also
    takes the same step in one process on all the rows)."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    x, y = _rows()
    out: dict[str, Any] = {"rank": int(os.environ["RANK"]), "world": world}
    try:
        for mode in ("hooks", "ghost", "bk"):
            model, training = _distributed(mode, sigma=SIGMA, clip=CLIP, shard=TensorRows(x[rank::world], y[rank::world]))
            counting = _CountingRandom(training.optimizer.secure_random)
            training.optimizer.secure_random = counting
            training.step(torch.empty(0, PROBE_IN), torch.empty(0, dtype=torch.long))
            noise = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
            out[f"{mode}/noise_std"] = float(noise.std())
            out[f"{mode}/expected_std"] = SIGMA * CLIP / training.expected_batch_size
            out[f"{mode}/draws"] = counting.draws
            out[f"{mode}/weights"] = [p.detach().clone() for p in model.parameters()]  # equal on every rank
            training.close()

            model, training = _distributed(mode, sigma=0.0, clip=1e6, shard=TensorRows(x[rank::world], y[rank::world]))
            training.step(x[rank::world], y[rank::world])
            out[f"{mode}/parity"] = [p.detach().clone() for p in model.parameters()]
            training.close()
            if rank == 0:
                single_model = _model()
                single = make_private(
                    model=single_model, optimizer=torch.optim.SGD(single_model.parameters(), lr=1.0), train=TensorRows(x, y),
                    batch_size=PROBE_BATCH, epochs=1, target_epsilon=8.0, delta=1e-3, max_grad_norm=1e6, accountant="rdp",
                    mode=mode, calibration="accountant",
                )
                single.optimizer.noise_multiplier = 0.0
                single.step(x, y)
                out[f"{mode}/single"] = [p.detach().clone() for p in single_model.parameters()]
                out[f"{mode}/single_divisor"] = single.expected_batch_size
                single.close()
    finally:
        dist.destroy_process_group()
    return out


@pytest.fixture(scope="module")
def probed() -> dict[int, dict[str, Any]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(ROOT))
        return launch_ranks(2, _probe)


@pytest.mark.parametrize("mode", ["hooks", "ghost", "bk"])
def test_the_noise_is_drawn_once_per_step_not_once_per_rank(probed: dict[int, dict[str, Any]], mode: str) -> None:
    zero, one = probed[0], probed[1]
    assert (zero["rank"], one["rank"], zero["world"]) == (0, 1, 2)
    assert (zero[f"{mode}/draws"], one[f"{mode}/draws"]) == (1, 0)  # rank 0 alone draws, once
    # The averaged gradient of an empty batch is pure noise. One draw: std σC / expected
    # batch; a draw on each of the 2 ranks would give √2 times that. 2080 coordinates put the
    # sample std within ~2% of the truth, far from either edge.
    ratio = zero[f"{mode}/noise_std"] / zero[f"{mode}/expected_std"]
    assert 0.9 < ratio < 1.1, ratio
    assert one[f"{mode}/noise_std"] == zero[f"{mode}/noise_std"]  # every rank applies the same update
    for a, b in zip(zero[f"{mode}/weights"], one[f"{mode}/weights"]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("mode", ["hooks", "ghost", "bk"])
def test_a_noiseless_step_on_two_shards_equals_one_step_on_their_union(probed: dict[int, dict[str, Any]], mode: str) -> None:
    zero, one = probed[0], probed[1]
    assert zero[f"{mode}/single_divisor"] == PROBE_BATCH  # both divide the sum by the global expected batch
    moved = False
    for dist_p, other_p, single_p, init_p in zip(zero[f"{mode}/parity"], one[f"{mode}/parity"], zero[f"{mode}/single"], _model().parameters()):
        assert torch.equal(dist_p, other_p)
        torch.testing.assert_close(dist_p, single_p, rtol=1e-5, atol=1e-6)
        moved = moved or not torch.equal(single_p, init_p.detach())
    assert moved  # the step did something to compare

"""Progress as the job shows it: the conservative ε (the figure charged and registered), the
planned total from the start, a first report as soon as a step is taken, no NaN anywhere,
and an empty Poisson batch that costs no NaN loss."""

from __future__ import annotations

import math

import pytest
import torch

from privet.governance.architectures import ModelSpec
from privet.governance.privacy.accounting import Mechanism, conservative_epsilon, epsilon_for
from privet.services.training.dp import TensorRows, make_private
from privet.services.training.engine import Progress, TrainConfig, train_dp
from privet.services.training.scheduler import shown_progress, steps_of_plan

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _data(rows: int = 300, valid: int = 100) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(rows + valid, 4, generator=g)
    y = (x[:, 0] > 0).long()
    return (x[:rows], y[:rows]), (x[rows:], y[rows:])


CONFIG = TrainConfig(arch="logreg", epochs=2, batch_size=50, learning_rate=0.1, target_epsilon=2.0, delta=1e-4, accountant="prv",
                     device="cpu", progress_interval_s=3600.0, evaluation_epsilon=5.0)


@pytest.fixture(scope="module")
def run() -> tuple[object, list[Progress]]:
    train, valid = _data()
    progress: list[Progress] = []
    result = train_dp(CONFIG, train, valid, on_progress=progress.append, should_stop=lambda: False)
    return result, progress


def test_progress_reports_the_conservative_epsilon(run) -> None:
    result, progress = run
    g = result.guarantee
    assert progress[-1].epsilon == g.conservative_epsilon
    for p in progress:
        mechanism = Mechanism(g.noise_multiplier, g.sample_rate, p.step, g.delta)
        assert p.epsilon == conservative_epsilon(mechanism)[0] >= epsilon_for(mechanism, "prv")


def test_the_first_report_comes_right_after_the_first_step(run) -> None:
    result, progress = run
    # The interval is an hour: only the first step and the epochs' ends report.
    assert [p.step for p in progress][:1] == [1]
    assert len(progress) == 1 + CONFIG.epochs
    assert all(p.total_steps == result.guarantee.steps for p in progress)
    assert all(math.isfinite(p.eta_s) and p.eta_s >= 0 for p in progress)
    assert progress[0].eta_s > 0 and progress[-1].eta_s == 0.0


def test_cancelled_before_any_step_reports_a_finite_eta() -> None:
    train, valid = _data()
    progress: list[Progress] = []
    train_dp(CONFIG, train, valid, on_progress=progress.append, should_stop=lambda: True)
    assert progress and all(math.isfinite(p.eta_s) for p in progress) and progress[-1].step == 0


@pytest.mark.parametrize("rows,batch,epochs", [(300, 50, 2), (1200, 128, 3), (1000, 1000, 4), (7, 3, 5), (65537, 256, 1)])
def test_the_plan_knows_the_steps_the_worker_takes(rows, batch, epochs) -> None:
    x, y = torch.zeros(rows, 2), torch.zeros(rows, dtype=torch.long)
    model = ModelSpec.create("logreg", 2, 2).build()
    training = make_private(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), train=TensorRows(x, y), batch_size=batch,
                            epochs=epochs, target_epsilon=8.0, delta=1e-5, max_grad_norm=1.0, accountant="rdp", mode="bk", calibration="accountant")
    q = 1 / -(-rows // batch)  # the scheduler's sampling rate
    assert steps_of_plan(epochs=epochs, sample_rate=q) == training.steps_per_epoch * epochs
    training.close()


def test_shown_progress_adds_what_is_already_released() -> None:
    shown = shown_progress({"step": 3, "total_steps": 10, "epsilon": 0.5, "eta_s": 1.0}, 0.06)
    assert shown == {"step": 3, "total_steps": 10, "epsilon": math.fsum([0.5, 0.06]), "eta_s": 1.0}


@pytest.mark.parametrize("mode", ["bk", "ghost", "hooks"])
def test_an_empty_batch_has_no_nan_loss(mode) -> None:
    torch.manual_seed(0)
    model = ModelSpec.create("mlp", 3, 2).build() if mode == "ghost" else ModelSpec.create("logreg", 3, 2).build()
    x, y = torch.randn(100, 3), torch.randint(0, 2, (100,))
    training = make_private(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), train=TensorRows(x, y), batch_size=10,
                            epochs=1, target_epsilon=3.0, delta=1e-5, max_grad_norm=1.0, accountant="rdp", mode=mode, calibration="accountant")
    loss = training.step(x[:0], y[:0])
    assert float(loss) == 0.0 and training.steps == 1
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    training.close()

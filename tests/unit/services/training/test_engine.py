"""train_dp: a real, tiny DP training run, its guarantee, cancellation and refusals."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest
import torch
from opacus.accountants import create_accountant

from privet.governance.architectures import load_model
from privet.governance.errors import InvalidArgument
from privet.governance.privacy.accounting import Mechanism, epsilon_for
from privet.services.training import dp as dp_module
from privet.services.training.engine import (
    Progress,
    TrainConfig,
    TrainingAborted,
    TrainResult,
    train_dp,
)
from tests.seeded_random import SeededRandom

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

ROWS, VALID, FEATURES = 400, 200, 6


def _data(seed: int = 0) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(ROWS + VALID, FEATURES, generator=g)
    y = (x[:, 0] - 0.7 * x[:, 1] + 0.2 * torch.randn(ROWS + VALID, generator=g) > 0.3).long()
    return (x[:ROWS], y[:ROWS]), (x[ROWS:], y[ROWS:])


# Quick settings: RDP calibration is ~5× faster than PRV's; the default (PRV) is tested once.
QUICK = TrainConfig(
    arch="logreg",
    epochs=1,
    batch_size=50,
    learning_rate=0.1,
    target_epsilon=2.0,
    delta=1e-4,
    accountant="rdp",
    calibration="accountant",
    device="cpu",
)


def _never() -> bool:
    return False


def _opacus_epsilon(accountant: str, sigma: float, q: float, steps: int, delta: float) -> float:
    """A fresh Opacus accountant, stepped the way the optimizer's hook steps it."""
    acc = create_accountant(mechanism=accountant)
    for _ in range(steps):
        acc.step(noise_multiplier=sigma, sample_rate=q)
    return acc.get_epsilon(delta=delta)


@pytest.fixture(scope="module")
def default_run() -> tuple[TrainResult, list[Progress]]:
    """The platform's defaults: mlp, PRV accountant, conservative calibration, auto mode."""
    train, valid = _data()
    config = TrainConfig(
        arch="mlp",
        epochs=2,
        batch_size=64,
        learning_rate=0.01,
        target_epsilon=3.0,
        delta=1e-3,
        device="cpu",
        progress_interval_s=0.0,
        evaluation_epsilon=5.0,  # little noise on the metrics, so the bounds below hold
    )
    progress: list[Progress] = []
    result = train_dp(config, train, valid, on_progress=progress.append, should_stop=_never)
    return result, progress


def test_reported_epsilon_is_opacus_accountant_and_within_target(default_run) -> None:
    result, _ = default_run
    g = result.guarantee
    assert g.accountant == "prv" and g.poisson_sampling and g.privacy_unit == "row"
    assert g.steps > 0 and 0 < g.sample_rate < 1 and g.noise_multiplier > 0 and g.max_grad_norm == 1.0
    assert g.epsilon == _opacus_epsilon("prv", g.noise_multiplier, g.sample_rate, g.steps, g.delta)
    assert g.epsilon == epsilon_for(g.mechanism(), "prv")
    assert 0 < g.epsilon <= g.target_epsilon == 3.0
    # Calibrated so that the ledger's conservative charge also fits the target.
    assert g.conservative_epsilon == max(epsilon_for(g.mechanism(), n) for n in ("prv", "rdp"))
    assert g.epsilon <= g.conservative_epsilon <= g.target_epsilon


def test_default_run_trains_a_registrable_model(default_run) -> None:
    result, _ = default_run
    assert not result.cancelled and result.epochs_completed == 2
    assert result.grad_sample_mode == "bk" and result.device == "cpu"
    m = result.metrics
    assert abs(m.examples - VALID) <= 10 and m.loss is not None and math.isfinite(m.loss)
    assert result.evaluation.epsilon == 5.0 and result.evaluation.purpose == "evaluation"
    assert m.accuracy > m.baseline_accuracy and m.roc_auc is not None and m.roc_auc > 0.8
    assert result.integrity.ok and result.registrable and result.refusal is None
    model = load_model("mlp", result.model, result.weights)
    _, (x, _) = _data()
    assert model(x).shape == (VALID, 2)


def test_progress_reports(default_run) -> None:
    result, progress = default_run
    assert progress, "no progress reported"
    assert [p.step for p in progress] == sorted(p.step for p in progress)
    assert [p.epsilon for p in progress] == sorted(p.epsilon for p in progress)
    last = progress[-1]
    assert (last.epoch, last.epochs, last.step, last.total_steps) == (
        2,
        2,
        result.guarantee.steps,
        result.guarantee.steps,
    )
    assert last.epsilon == result.guarantee.conservative_epsilon and last.eta_s == 0.0
    assert all(p.eta_s >= 0 for p in progress)
    assert not hasattr(last, "loss")  # the loss of private batches is never reported


def test_cancel_after_k_steps_reports_the_epsilon_spent() -> None:
    train, valid = _data()
    calls = itertools.count()
    result = train_dp(QUICK, train, valid, on_progress=lambda p: None, should_stop=lambda: next(calls) >= 3)
    g = result.guarantee
    assert result.cancelled and g.steps == 3
    assert g.epsilon > 0
    assert g.epsilon == _opacus_epsilon("rdp", g.noise_multiplier, g.sample_rate, 3, g.delta)
    assert not result.registrable and "cancelled" in result.refusal


def test_cancel_before_the_first_step_spends_nothing() -> None:
    train, valid = _data()
    progress: list[Progress] = []
    result = train_dp(QUICK, train, valid, on_progress=progress.append, should_stop=lambda: True)
    g = result.guarantee
    assert result.cancelled and g.steps == 0
    assert g.epsilon == 0.0 and g.conservative_epsilon == 0.0
    assert result.epochs_completed == 0 and not result.registrable
    assert progress[-1].step == 0 and progress[-1].epsilon == 0.0


def test_should_stop_is_polled_once_before_each_noisy_step() -> None:
    """The count of False answers bounds the steps taken: what a service needs to charge
    a worker that was killed mid-run."""
    train, valid = _data()
    polls: list[None] = []

    def count() -> bool:
        polls.append(None)
        return False

    result = train_dp(QUICK, train, valid, on_progress=lambda p: None, should_stop=count)
    assert len(polls) == result.guarantee.steps > 0


def test_failure_mid_run_reports_what_was_spent() -> None:
    train, valid = _data()
    calls = itertools.count()

    def fail_on_third_poll() -> bool:
        if next(calls) == 2:
            raise OSError("disk full")
        return False

    with pytest.raises(TrainingAborted) as caught:
        train_dp(QUICK, train, valid, on_progress=lambda p: None, should_stop=fail_on_third_poll)
    g = caught.value.guarantee
    assert g.steps == 2 and g.epsilon == _opacus_epsilon("rdp", g.noise_multiplier, g.sample_rate, 2, g.delta) > 0
    assert isinstance(caught.value.__cause__, OSError)


def test_identical_jobs_release_different_weights() -> None:
    """The replay attack: whoever knows the data, the config and the public seed re-runs
    training and compares. With noise and sampling from a secret CSPRNG, the same job run
    twice (same data, same seed, torch's global generator reset too) gives other weights."""
    train, valid = _data()
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        runs.append(train_dp(replace(QUICK, seed=5), train, valid, on_progress=lambda p: None, should_stop=_never))
    assert runs[0].weights != runs[1].weights
    assert runs[0].guarantee == runs[1].guarantee  # same mechanism, only the secret draws differ


def test_seed_fixes_only_the_initial_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the secret source replaced by a seeded stand-in (tests only), the runs agree:
    so the seed drives initialisation and nothing else is left to chance."""
    monkeypatch.setattr(dp_module, "SecureRandom", lambda: SeededRandom(11))
    train, valid = _data()
    runs = [train_dp(replace(QUICK, seed=s), train, valid, on_progress=lambda p: None, should_stop=_never) for s in (5, 5, 6)]
    assert runs[0].weights == runs[1].weights
    assert runs[0].weights != runs[2].weights


def test_all_clipping_modes_train_the_same_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """bk is a faster route to the same clipped sum as Opacus's ghost and hooks modes
    (compared under one seeded stand-in for the secret source, so the noise is equal)."""
    monkeypatch.setattr(dp_module, "SecureRandom", lambda: SeededRandom(3))
    train, valid = _data()
    config = replace(QUICK, arch="mlp", hparams={"hidden": [16]}, seed=2)
    models = {}
    for mode in ("bk", "ghost", "hooks"):
        result = train_dp(
            replace(config, grad_sample_mode=mode), train, valid, on_progress=lambda p: None, should_stop=_never
        )
        assert result.grad_sample_mode == mode
        models[mode] = load_model("mlp", result.model, result.weights)
    for mode in ("ghost", "hooks"):
        for a, b in zip(models["bk"].parameters(), models[mode].parameters()):
            assert torch.allclose(a, b, atol=1e-5), mode


@pytest.mark.parametrize("mode", ["bk", "ghost"])
def test_physical_batch_limit_does_not_change_the_run(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """BatchMemoryManager splits each Poisson draw into physical batches of at most 16
    rows; the clipped sums add up, so the steps, ε and weights are those of the unsplit run
    (under one seeded stand-in for the secret source)."""
    monkeypatch.setattr(dp_module, "SecureRandom", lambda: SeededRandom(4))
    train, valid = _data()
    config = replace(QUICK, arch="mlp", hparams={"hidden": [8]}, grad_sample_mode=mode)
    whole, split = (
        train_dp(
            replace(config, max_physical_batch_size=size), train, valid, on_progress=lambda p: None, should_stop=_never
        )
        for size in (1024, 16)
    )
    assert split.guarantee == whole.guarantee
    a, b = (load_model("mlp", r.model, r.weights) for r in (whole, split))
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-5)


def test_layer_norm_mlp_falls_back_to_ghost() -> None:
    train, valid = _data()
    config = replace(QUICK, arch="mlp", hparams={"hidden": [8], "layer_norm": True})
    result = train_dp(config, train, valid, on_progress=lambda p: None, should_stop=_never)
    assert result.grad_sample_mode == "ghost"


def test_diverged_model_is_not_registrable() -> None:
    train, valid = _data()
    config = replace(QUICK, optimizer="sgd", learning_rate=1e38)
    result = train_dp(config, train, valid, on_progress=lambda p: None, should_stop=_never)
    assert not result.integrity.ok and not result.registrable
    assert "diverged" in result.refusal or "NaN or infinity" in result.refusal


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"delta": 1 / ROWS}, "delta"),  # δ ≥ 1/n
        ({"delta": 0.5}, "delta"),
        ({"batch_size": ROWS + 1}, "batch_size"),
        ({"poisson_sampling": False}, "poisson_sampling"),
        ({"target_epsilon": 0.0}, "target_epsilon"),
        ({"target_epsilon": float("nan")}, "target_epsilon"),
        ({"epochs": 0}, "epochs"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"max_grad_norm": 0.0}, "max_grad_norm"),
        ({"accountant": "moments"}, "accountant"),
        ({"arch": "resnet"}, "arch"),
        ({"hparams": {"hidden": [4]}}, "hparams.hidden"),
        ({"device": "tpu"}, "device"),
        ({"grad_sample_mode": "functorch"}, "grad_sample_mode"),
        ({"n_classes": 1}, "n_classes"),
    ],
)
def test_bad_requests_name_the_field(change: dict, field: str) -> None:
    train, valid = _data()
    with pytest.raises(InvalidArgument) as caught:
        train_dp(replace(QUICK, **change), train, valid, on_progress=lambda p: None, should_stop=_never)
    assert caught.value.field == field


@pytest.mark.parametrize("epsilon", [0.3, 0.05])
def test_dataset_too_small_for_the_guarantee_is_refused(epsilon: float) -> None:
    """400 rows cannot give ε = 0.3 over 3 epochs at batch 10 without drowning the
    gradient in noise (σ/batch ≈ 0.31); ε = 0.05 is beyond the accountant's reach with
    any noise at all. Both are refused before any step."""
    train, valid = _data()
    progress: list[Progress] = []
    config = replace(QUICK, target_epsilon=epsilon, batch_size=10, epochs=3)
    with pytest.raises(InvalidArgument) as caught:
        train_dp(config, train, valid, on_progress=progress.append, should_stop=_never)
    assert caught.value.field == "target_epsilon"
    assert "too few rows" in caught.value.message
    assert progress == []


def test_mismatched_splits_are_refused() -> None:
    (x, y), (xv, yv) = _data()
    cases = [
        (((x, y[:-1]), (xv, yv)), "train"),
        (((x, y.float()), (xv, yv)), "train"),
        (((x, y), (xv[:, :3], yv)), "valid"),
    ]
    for (train, valid), field in cases:
        with pytest.raises(InvalidArgument) as caught:
            train_dp(QUICK, train, valid, on_progress=lambda p: None, should_stop=_never)
        assert caught.value.field == field


def test_cuda_device_is_refused_without_a_gpu() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    train, valid = _data()
    with pytest.raises(InvalidArgument) as caught:
        train_dp(replace(QUICK, device="cuda"), train, valid, on_progress=lambda p: None, should_stop=_never)
    assert caught.value.field == "device"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_on_cuda() -> None:
    train, valid = _data()
    config = replace(QUICK, arch="mlp", device="auto", epochs=2)
    result = train_dp(config, train, valid, on_progress=lambda p: None, should_stop=_never)
    assert result.device.startswith("cuda")
    g = result.guarantee
    assert g.epsilon == _opacus_epsilon("rdp", g.noise_multiplier, g.sample_rate, g.steps, g.delta) <= 2.0
    assert result.integrity.ok
    model = load_model("mlp", result.model, result.weights)  # weights come back on CPU
    assert next(model.parameters()).device.type == "cpu"


def test_mechanism_of_the_guarantee(default_run) -> None:
    result, _ = default_run
    g = result.guarantee
    assert g.mechanism() == Mechanism(g.noise_multiplier, g.sample_rate, g.steps, g.delta)
    assert set(g.to_dict()) >= {
        "epsilon",
        "delta",
        "noise_multiplier",
        "sample_rate",
        "steps",
        "accountant",
        "max_grad_norm",
    }


def test_the_sampling_rate_and_steps_follow_the_public_row_count() -> None:
    """With a DP row count given, q = 1/⌈public_rows / batch⌉ whatever the exact count, and
    refusals name the public count, never the exact one."""
    train, valid = _data()
    result = train_dp(replace(QUICK, public_rows=437), train, valid, on_progress=lambda p: None, should_stop=_never)
    assert result.guarantee.sample_rate == 1 / math.ceil(437 / QUICK.batch_size)
    assert result.guarantee.steps == math.ceil(437 / QUICK.batch_size) * QUICK.epochs
    with pytest.raises(InvalidArgument) as caught:
        train_dp(replace(QUICK, public_rows=30), train, valid, on_progress=lambda p: None, should_stop=_never)
    assert caught.value.field == "batch_size" and "30 training rows" in caught.value.message and str(ROWS) not in caught.value.message


@pytest.mark.parametrize("mode", ["bk", "ghost", "hooks"])
def test_empty_splits_run_on_noise_instead_of_being_refused(mode: str) -> None:
    """A job whose filters left no row must not be refused (the refusal would tell so): it
    takes its noisy steps on empty Poisson draws and evaluates a histogram of noise, which
    is too noisy to register."""
    x, y = torch.zeros(0, FEATURES), torch.zeros(0, dtype=torch.long)
    config = replace(QUICK, public_rows=400, n_classes=2, grad_sample_mode=mode, arch="mlp", hparams={"hidden": [8]})
    result = train_dp(config, (x, y), (x.clone(), y.clone()), on_progress=lambda p: None, should_stop=_never)
    assert result.guarantee.steps == math.ceil(400 / QUICK.batch_size) and not result.cancelled
    assert not result.registrable and "too noisy" in result.refusal

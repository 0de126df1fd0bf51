"""Benchmark: an empirical lower bound on the ε of Privet's DP training, against the stated ε.

    python -m tests.bench.privacy_audit --json
    python -m tests.bench.privacy_audit --json --replayable-noise   # the old, seeded noise

Both audits train through the engine's public entry point, `train_dp`, on synthetic
data (no downloads), and turn what an attacker achieves into an ε that the training
must at least spend, at confidence `--confidence`:

1. Replay (distinguishing) audit. The attacker knows every row but one (the target, an
   out-of-distribution row alone on its own feature), the config and the job's public
   seed. Per trial a coin picks D (with the target) or D' (without: add/remove
   adjacency, what the accountant certifies); a model is released; the attacker re-runs
   `train_dp` on D and on D' with the same seed and config and guesses the candidate
   whose replay puts the target's margin nearest the released model's (a replay that
   reproduces the released weights bit for bit sits at distance 0). From the true and
   false positive counts: ε ≥ log((TPR_low − δ) / FPR_high), with one-sided
   Clopper–Pearson bounds at 1 − α/2 each, so the pair holds at 1 − α (Jagielski et al.
   2020; Nasr et al. 2021). With noise and Poisson sampling from a secret CSPRNG the
   replays are fresh draws and the attack is at chance; with noise seeded from the
   public seed (`--replayable-noise`) every release is reproduced exactly and the
   bound is as large as the trial count allows.

2. One-run canary audit (Steinke, Nasr & Jagielski 2023, "Privacy Auditing with One (1)
   Training Run"). m canaries, each alone on its own feature with a random label,
   each included independently with probability 1/2; one training run. Each canary is
   scored from the released model; the attacker guesses "in" for the k highest scores
   and "out" for the k lowest, and the number of correct guesses v out of r = 2k gives
   the largest ε at which seeing v or more would have probability above α under the
   paper's bound (`one_run_p_value`). Two scores, two bounds: `margin` (the canary's
   label margin relative to a blank input, i.e. minus its loss with the bias taken
   out; black box) and `replay` (that margin minus the same margin in the attacker's
   replay of training on the non-canary rows with the public seed). When the noise is
   seeded the replay cancels it for logreg (an excluded canary's weight takes the same
   noisy steps in both runs; Adam's updates ignore the batch-size scaling), so the
   one-run audit catches the defect too (only partly for mlp, whose hidden layer mixes
   the canaries); with secret noise the replay is an independent draw and only adds
   variance. The count of non-canary rows is chosen so that any number of included
   canaries gives the same sample rate, steps and σ as the replay (`aligned` in the
   output).

The verdict `ok` is True when every lower bound is at most the stated ε of its own
audit (the largest `guarantee.epsilon` its training runs reported: the ε the engine
states for each release). Three bounds are reported, each at `--confidence` = 1 − α:
a correct implementation fails one by chance with probability at most 3 α. Exit status
1 when `ok` is False (expected with --replayable-noise).

Opacus's noise-multiplier search is memoised in the benchmark's processes (every run of
an audit asks it the same question); nothing else of the engine is touched, except the
noise source under --replayable-noise.

An empirical lower bound can refute a stated ε, never prove it: a weak attacker
gives a small bound whatever the truth.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = [
    "clopper_pearson",
    "distinguishing_epsilon_lb",
    "main",
    "one_run_epsilon_lb",
    "one_run_p_value",
]


# -- the statistics (pure functions; tested in tests/unit/privacy) ----------------------------


def clopper_pearson(successes: int, trials: int, alpha: float) -> tuple[float, float]:
    """One-sided Clopper–Pearson bounds for a binomial proportion: (lower, upper) such that
    P[p < lower] ≤ alpha and P[p > upper] ≤ alpha, each on its own (so a two-sided interval
    at 1 − 2·alpha). No trials: (0, 1)."""
    from scipy.stats import beta

    if not (0 <= successes <= trials):
        raise ValueError(f"need 0 <= successes <= trials, got {successes}, {trials}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if trials == 0:
        return 0.0, 1.0
    lower = 0.0 if successes == 0 else float(beta.ppf(alpha, successes, trials - successes + 1))
    upper = 1.0 if successes == trials else float(beta.ppf(1 - alpha, successes + 1, trials - successes))
    return lower, upper


def distinguishing_epsilon_lb(
    true_positives: int, positives: int, false_positives: int, negatives: int, *, delta: float, confidence: float
) -> dict[str, float]:
    """ε lower bound from a distinguishing game. (ε, δ)-DP implies TPR ≤ e^ε · FPR + δ for any
    test, so ε ≥ log((TPR − δ) / FPR). With TPR bounded below and FPR above, one-sided
    Clopper–Pearson at 1 − α/2 each, the bound holds with probability ≥ confidence = 1 − α.
    Negative bounds are reported as 0 (they refute nothing)."""
    alpha = 1.0 - confidence
    tpr_low, _ = clopper_pearson(true_positives, positives, alpha / 2)
    _, fpr_high = clopper_pearson(false_positives, negatives, alpha / 2)
    eps = 0.0
    if tpr_low > delta and fpr_high > 0:
        eps = max(0.0, math.log((tpr_low - delta) / fpr_high))
    tpr = true_positives / positives if positives else float("nan")
    fpr = false_positives / negatives if negatives else float("nan")
    if positives and negatives and tpr > delta:
        point = math.inf if fpr == 0 else max(0.0, math.log((tpr - delta) / fpr))
    else:
        point = 0.0
    return {"tpr": tpr, "fpr": fpr, "tpr_low": tpr_low, "fpr_high": fpr_high, "epsilon_lb": eps, "epsilon_point": point}


def one_run_p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """Steinke, Nasr & Jagielski (2023), main theorem: if training is (ε, δ)-DP in each of m
    canaries, each included independently with probability 1/2, and an attacker makes r
    guesses from the output, then its number of correct guesses W satisfies, for all v,

        P[W ≥ v] ≤ f(v) + 2 m δ · max_{1 ≤ i ≤ m} (f(v − i) − f(v)) / i,

    with f(v) = P[Binomial(r, e^ε / (1 + e^ε)) ≥ v]. Returns that bound (capped at 1): the
    p-value of seeing v correct guesses under the hypothesis "(ε, δ)-DP". For i ≥ v,
    f(v − i) = 1, so the maximum is reached at some i ≤ v."""
    from scipy.special import expit
    from scipy.stats import binom

    if not (0 <= v <= r <= m):
        raise ValueError(f"need 0 <= v <= r <= m, got v={v}, r={r}, m={m}")
    if epsilon < 0 or not 0 <= delta <= 1:
        raise ValueError(f"need epsilon >= 0 and 0 <= delta <= 1, got {epsilon}, {delta}")
    if v == 0:
        return 1.0
    q = float(expit(epsilon))  # e^ε / (1 + e^ε): the accuracy of ε-DP randomised response
    tail = float(binom.sf(v - 1, r, q))  # f(v)
    if delta == 0:
        return min(1.0, tail)
    import numpy as np

    # f(v − i) − f(v) = P[v − i ≤ Binomial < v]: running sums of the pmf from v − 1 down.
    below = binom.pmf(np.arange(v - 1, -1, -1), r, q)  # pmf(v − 1), pmf(v − 2), ..., pmf(0)
    gaps = np.cumsum(below) / np.arange(1, v + 1)
    return min(1.0, tail + 2 * m * delta * float(gaps.max()))


def one_run_epsilon_lb(m: int, r: int, v: int, *, delta: float, confidence: float, tol: float = 1e-6) -> float:
    """The largest ε that `v` correct guesses out of `r` (m canaries) refute at `confidence`:
    sup {ε ≥ 0 : one_run_p_value(m, r, v, ε, δ) ≤ 1 − confidence}, by bisection (the bound
    grows with ε). 0 when even ε = 0 is not refuted."""
    beta = 1.0 - confidence
    if one_run_p_value(m, r, v, 0.0, delta) > beta:
        return 0.0
    low, high = 0.0, 1.0
    while one_run_p_value(m, r, v, high, delta) <= beta:
        low, high = high, 2 * high
        if high > 1e3:
            return math.inf
    while high - low > tol:
        mid = (low + high) / 2
        if one_run_p_value(m, r, v, mid, delta) <= beta:
            low = mid
        else:
            high = mid
    return low


# -- the noise source ---------------------------------------------------------------------------


class _ReplayableRandom:
    """The old behaviour, for this benchmark only: the `SecureRandom` interface drawn from
    torch generators seeded from the job's public seed, Poisson sampling from `seed` and
    noise from `seed + 1`, as the engine did before the noise became secret."""

    def __init__(self, seed: int) -> None:
        import torch

        self._sampling = torch.Generator().manual_seed(seed)
        self._noise = torch.Generator().manual_seed(seed + 1)

    def uniform(self, n: int) -> Any:
        import torch

        return (1.0 - torch.rand(n, generator=self._sampling, dtype=torch.float64)).numpy()

    def bernoulli_mask(self, n: int, p: float) -> Any:
        import torch

        return torch.rand(n, generator=self._sampling, dtype=torch.float64) < p

    def normal(self, n: int, std: float, *, device: Any = "cpu", dtype: Any = None) -> Any:
        import torch

        noise = torch.normal(0.0, std, size=(n,), generator=self._noise, dtype=torch.float64)
        return noise.to(device=device, dtype=dtype or torch.float32)


def noise_source(replayable: bool) -> str:
    """What the engine's noise and sampling draw from in this run of the benchmark."""
    from privet.services.training import dp

    if not hasattr(dp, "SecureRandom"):
        return "engine's own torch generators seeded from the public seed (code before the secret-noise change)"
    if replayable:
        return "seeded torch generators (public seed / seed + 1) patched over services.training.dp.SecureRandom"
    return "privet.services.training.dp.SecureRandom (AES-CTR, key from os.urandom)"


@contextlib.contextmanager
def _noise(replayable: bool, seed: int) -> Iterator[None]:
    """With `replayable`, make the engine's per-job random source a function of the public
    seed for the duration (the hook: the name `SecureRandom`, called once per run, in
    `services.training.dp` and, should it move there, `services.training.engine`). Code
    from before the change seeds from the public seed anyway."""
    from privet.services.training import dp, engine

    modules = [module for module in (dp, engine) if hasattr(module, "SecureRandom")] if replayable else []
    originals = [module.SecureRandom for module in modules]
    for module in modules:
        module.SecureRandom = lambda: _ReplayableRandom(seed)
    try:
        yield
    finally:
        for module, original in zip(modules, originals):
            module.SecureRandom = original


# -- data and training ---------------------------------------------------------------------------


def _base_rows(rng: Any, n: int, features: int, extra: int) -> tuple[Any, Any]:
    """n rows of a noisy linear rule on `features` Gaussian features, with `extra` all-zero
    columns (the canaries' own features)."""
    import numpy as np

    direction = np.linspace(1.0, -1.0, features)
    x = rng.standard_normal((n, features))
    y = (x @ direction + 0.5 * rng.standard_normal(n) > 0).astype(np.int64)
    return np.concatenate([x, np.zeros((n, extra))], axis=1), y


_MEMO: dict[tuple, float] = {}


def _memoise_noise_search() -> None:
    """Cache Opacus's noise-multiplier search (`get_noise_multiplier`, a pure function of
    ε, δ, q, steps and the accountant) in this process: every run of an audit asks it the
    same questions, and it is most of a small run's time. Same answers, asked once."""
    import opacus.accountants.utils as utils
    import opacus.privacy_engine as privacy_engine

    search = utils.get_noise_multiplier
    if getattr(search, "_privet_memoised", False):
        return

    def memoised(*args: Any, **kwargs: Any) -> float:
        if args:
            return search(*args, **kwargs)
        try:
            key = tuple(sorted(kwargs.items()))
            hash(key)
        except TypeError:
            return search(**kwargs)
        if key not in _MEMO:
            _MEMO[key] = search(**kwargs)
        return _MEMO[key]

    memoised._privet_memoised = True
    utils.get_noise_multiplier = memoised
    privacy_engine.get_noise_multiplier = memoised  # imported by name there


def _train(
    x: Any, y: Any, valid: tuple[Any, Any], opts: dict[str, Any], *, seed: int, batch_size: int, epochs: int
) -> Any:
    import torch

    from privet.services.training.engine import TrainConfig, train_dp

    _memoise_noise_search()
    config = TrainConfig(
        arch=opts["arch"],
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=opts["learning_rate"],
        target_epsilon=opts["epsilon"],
        delta=opts["delta"],
        n_classes=2,
        device="cpu",
        seed=seed,
        num_threads=1,
    )
    train = (torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64))
    held = (torch.as_tensor(valid[0], dtype=torch.float32), torch.as_tensor(valid[1], dtype=torch.int64))
    with _noise(opts["replayable"], seed):
        return train_dp(config, train, held, on_progress=lambda p: None, should_stop=lambda: False)


def _margins(result: Any, arch: str, x: Any, y: Any) -> Any:
    """Label margin logit[y] − logit[1 − y] of each row, minus the same margin for the blank
    (all-zero) input, from the released weights alone (for logreg: the weights' part of
    the margin, the bias cancelled)."""
    import numpy as np
    import torch

    from privet.governance.architectures import load_model

    model = load_model(arch, result.model, result.weights)
    with torch.no_grad():
        inputs = torch.as_tensor(np.concatenate([x, np.zeros((1, x.shape[1]))]), dtype=torch.float32)
        logits = model(inputs).double().numpy()
    diff = logits[:, 1] - logits[:, 0]
    signed = np.where(np.asarray(y) == 1, 1.0, -1.0)
    return signed * (diff[:-1] - diff[-1])


def _replay_data(opts: dict[str, Any]) -> dict[str, Any]:
    """D' (n − 1 rows the attacker knows), the target row (alone on the last feature, label
    1) and a held-out split. Deterministic in --data-seed: every process builds the same."""
    import numpy as np

    rng = np.random.default_rng(opts["data_seed"])
    x, y = _base_rows(rng, opts["rows"] - 1, opts["features"], 1)
    target_x = np.zeros((1, x.shape[1]))
    target_x[0, -1] = opts["canary_scale"]
    target_y = np.ones(1, dtype=np.int64)
    valid = _base_rows(rng, 500, opts["features"], 1)
    return {"x": x, "y": y, "target_x": target_x, "target_y": target_y, "valid": valid}


def _replay_trial(trial: int, seed: int, with_target: bool, opts: dict[str, Any]) -> dict[str, Any]:
    """One round of the distinguishing game: release, then the attacker's two replays."""
    import numpy as np

    started = time.monotonic()
    data = _replay_data(opts)
    with_x = np.concatenate([data["x"], data["target_x"]])
    with_y = np.concatenate([data["y"], data["target_y"]])
    candidates = {True: (with_x, with_y), False: (data["x"], data["y"])}

    def run(include: bool) -> Any:
        x, y = candidates[include]
        return _train(x, y, data["valid"], opts, seed=seed, batch_size=opts["batch"], epochs=opts["epochs"])

    released = run(with_target)
    replay_in, replay_out = run(True), run(False)

    def target_margin(result: Any) -> float:
        return float(_margins(result, opts["arch"], data["target_x"], data["target_y"])[0])

    m_released, m_in, m_out = target_margin(released), target_margin(replay_in), target_margin(replay_out)
    guess = abs(m_released - m_in) <= abs(m_released - m_out)
    if released.weights == replay_in.weights != replay_out.weights:
        guess = True
    elif released.weights == replay_out.weights != replay_in.weights:
        guess = False
    reproduced = released.weights == (replay_in if with_target else replay_out).weights
    stated = [r.guarantee.epsilon for r in (released, replay_in, replay_out)]
    return {
        "trial": trial,
        "with_target": with_target,
        "guess": bool(guess),
        "reproduced": bool(reproduced),
        "stated_epsilon": max(stated),
        "conservative_epsilon": max(r.guarantee.conservative_epsilon for r in (released, replay_in, replay_out)),
        "noise_multiplier": released.guarantee.noise_multiplier,
        "sample_rate": released.guarantee.sample_rate,
        "steps": released.guarantee.steps,
        "accountant": released.guarantee.accountant,
        "seconds": time.monotonic() - started,
    }


def _one_run_rows(m: int, batch: int, minimum: int) -> int:
    """The fewest non-canary rows, at least `minimum`, such that any number 0..m of included
    canaries gives Opacus the same sample rate 1 / ceil(n / batch), so the same steps and
    noise multiplier as the attacker's replay on the non-canary rows alone."""
    k = max(2, -(-minimum // batch))
    while True:
        rows = max(minimum, batch * (k - 1) + 1)
        if rows + m <= batch * k:
            return rows
        if m >= batch:
            return minimum  # cannot align: reported as aligned = False
        k += 1


def _one_run(opts: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    started = time.monotonic()
    m, k = opts["canaries"], opts["guesses"]
    rows = _one_run_rows(m, opts["one_run_batch"], opts["one_run_rows"])
    batch = opts["one_run_batch"]
    aligned = -(-rows // batch) == -(-(rows + m) // batch)
    data_rng = np.random.default_rng(opts["data_seed"] + 1)
    x, y = _base_rows(data_rng, rows, opts["features"], m)
    valid = _base_rows(data_rng, 500, opts["features"], m)
    canary_x = np.zeros((m, x.shape[1]))
    canary_x[np.arange(m), opts["features"] + np.arange(m)] = opts["canary_scale"]
    canary_y = data_rng.integers(0, 2, m)

    # The experimenter's coins: which canaries go in. Not the attacker's, nor the engine's.
    coins = np.random.default_rng(opts["seed"] + 10**6)
    included = coins.random(m) < 0.5
    seed = int(coins.integers(0, 2**31))  # the job's public seed
    train_x = np.concatenate([x, canary_x[included]])
    train_y = np.concatenate([y, canary_y[included]])

    released = _train(train_x, train_y, valid, opts, seed=seed, batch_size=batch, epochs=opts["one_run_epochs"])
    reference = _train(x, y, valid, opts, seed=seed, batch_size=batch, epochs=opts["one_run_epochs"])
    margin = _margins(released, opts["arch"], canary_x, canary_y)
    scores = {"margin": margin, "replay": margin - _margins(reference, opts["arch"], canary_x, canary_y)}

    results = {}
    for name, score in scores.items():
        order = np.argsort(score, kind="stable")  # ties broken by canary index, which S does not touch
        guessed_out, guessed_in = order[:k], order[m - k :]
        correct = int(included[guessed_in].sum() + (~included[guessed_out]).sum())
        results[name] = {
            "correct": correct,
            "accuracy": correct / (2 * k),
            "epsilon_lb": one_run_epsilon_lb(m, 2 * k, correct, delta=opts["delta"], confidence=opts["confidence"]),
        }
    g = released.guarantee
    return {
        "canaries": m,
        "included": int(included.sum()),
        "k": k,
        "guesses": 2 * k,
        "non_canary_rows": rows,
        "batch": batch,
        "epochs": opts["one_run_epochs"],
        "aligned": aligned,
        "scores": results,
        "epsilon_lb": max(r["epsilon_lb"] for r in results.values()),
        "stated_epsilon": max(g.epsilon, reference.guarantee.epsilon),
        "conservative_epsilon": g.conservative_epsilon,
        "noise_multiplier": g.noise_multiplier,
        "sample_rate": g.sample_rate,
        "steps": g.steps,
        "accountant": g.accountant,
        "released_accuracy": released.metrics.accuracy,
        "seconds": round(time.monotonic() - started, 1),
    }


def _replay_audit(opts: dict[str, Any]) -> dict[str, Any]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import numpy as np

    started = time.monotonic()
    coins = np.random.default_rng(opts["seed"])
    plan = [(t, int(coins.integers(0, 2**31)), bool(coins.random() < 0.5), opts) for t in range(opts["trials"])]
    if opts["workers"] > 1:
        # One thread per worker, BLAS included (the accountants' numpy): spawned children
        # read these before importing numpy.
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, "1")
        with ProcessPoolExecutor(opts["workers"], mp_context=multiprocessing.get_context("spawn")) as pool:
            trials = list(pool.map(_replay_trial_star, plan))
    else:
        trials = [_replay_trial(*p) for p in plan]
    positives = sum(t["with_target"] for t in trials)
    true_positives = sum(t["with_target"] and t["guess"] for t in trials)
    false_positives = sum((not t["with_target"]) and t["guess"] for t in trials)
    bound = distinguishing_epsilon_lb(
        true_positives, positives, false_positives, len(trials) - positives,
        delta=opts["delta"], confidence=opts["confidence"],
    )
    first = trials[0]
    return {
        "trials": len(trials),
        "rows": opts["rows"],
        "batch": opts["batch"],
        "epochs": opts["epochs"],
        "positives": positives,
        "negatives": len(trials) - positives,
        "true_positives": true_positives,
        "false_positives": false_positives,
        "correct": sum(t["guess"] == t["with_target"] for t in trials),
        "reproduced_bitwise": sum(t["reproduced"] for t in trials),
        **{key: round(value, 6) if math.isfinite(value) else value for key, value in bound.items()},
        "stated_epsilon": max(t["stated_epsilon"] for t in trials),
        "conservative_epsilon": max(t["conservative_epsilon"] for t in trials),
        "noise_multiplier": first["noise_multiplier"],
        "sample_rate": first["sample_rate"],
        "steps": first["steps"],
        "accountant": first["accountant"],
        "training_runs": 3 * len(trials),
        "seconds": round(time.monotonic() - started, 1),
    }


def _replay_trial_star(args: tuple) -> dict[str, Any]:
    import warnings

    warnings.simplefilter("ignore")
    return _replay_trial(*args)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf": JSON has no infinity
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.privacy_audit", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--replayable-noise", action="store_true",
                        help="seed noise and sampling from the public seed (the old defect), in this benchmark only")
    parser.add_argument("--audits", default="replay,one-run", help="comma-separated: replay, one-run")
    parser.add_argument("--arch", default="logreg", choices=("logreg", "mlp"))
    parser.add_argument("--epsilon", type=float, default=1.0, help="target ε of every training run")
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0, help="the experimenter's coins and the jobs' public seeds")
    parser.add_argument("--data-seed", type=int, default=0, help="the synthetic data (known to the attacker)")
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--canary-scale", type=float, default=4.0, help="the value of a canary's own feature")
    parser.add_argument("--trials", type=int, default=200, help="replay audit: rounds of the game (3 runs each)")
    parser.add_argument("--rows", type=int, default=500, help="replay audit: rows of D (the target included)")
    parser.add_argument("--batch", type=int, default=50, help="replay audit: expected batch size")
    parser.add_argument("--epochs", type=int, default=3, help="replay audit: epochs")
    parser.add_argument("--canaries", type=int, default=1000, help="one-run audit: m")
    parser.add_argument("--guesses", type=int, default=100, help="one-run audit: k guesses 'in' and k 'out'")
    parser.add_argument("--one-run-rows", type=int, default=2000,
                        help="one-run audit: at least this many non-canary rows (raised until aligned)")
    parser.add_argument("--one-run-batch", type=int, default=1024, help="one-run audit: expected batch size")
    parser.add_argument("--one-run-epochs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="replay audit: processes (one torch thread each)")
    args = parser.parse_args(argv)
    audits = set(args.audits.split(","))
    if not audits <= {"replay", "one-run"} or not audits:
        parser.error("--audits takes replay and/or one-run")
    if not 0 < args.confidence < 1:
        parser.error("--confidence must be in (0, 1)")
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    if not 1 <= args.guesses <= args.canaries // 2:
        parser.error("--guesses must be between 1 and --canaries / 2")

    import warnings

    warnings.simplefilter("ignore")
    opts = {
        "replayable": args.replayable_noise,
        "arch": args.arch,
        "epsilon": args.epsilon,
        "delta": args.delta,
        "learning_rate": args.learning_rate,
        "confidence": args.confidence,
        "seed": args.seed,
        "data_seed": args.data_seed,
        "features": args.features,
        "canary_scale": args.canary_scale,
        "trials": args.trials,
        "rows": args.rows,
        "batch": args.batch,
        "epochs": args.epochs,
        "canaries": args.canaries,
        "guesses": args.guesses,
        "one_run_rows": args.one_run_rows,
        "one_run_batch": args.one_run_batch,
        "one_run_epochs": args.one_run_epochs,
        "workers": max(1, args.workers),
    }
    from tests.bench._timing import environment

    started = time.monotonic()
    report: dict[str, Any] = {
        "command": "python -m tests.bench.privacy_audit " + " ".join(argv if argv is not None else sys.argv[1:]),
        "environment": environment(1),
        "noise": "replayable" if args.replayable_noise else "secret",
        "noise_source": noise_source(args.replayable_noise),
        "arch": args.arch,
        "target_epsilon": args.epsilon,
        "delta": args.delta,
        "confidence": args.confidence,
    }
    checks = []  # (ε lower bound, the stated ε it is held against)
    if "replay" in audits:
        report["replay_audit"] = replay = _replay_audit(opts)
        replay["ok"] = replay["epsilon_lb"] <= replay["stated_epsilon"]
        checks.append((replay["epsilon_lb"], replay["stated_epsilon"]))
    if "one-run" in audits:
        report["one_run_audit"] = one = _one_run(opts)
        one["ok"] = all(s["epsilon_lb"] <= one["stated_epsilon"] for s in one["scores"].values())
        checks.extend((s["epsilon_lb"], one["stated_epsilon"]) for s in one["scores"].values())
    report["stated_epsilon"] = min(stated for _, stated in checks)
    report["max_epsilon_lb"] = max(bound for bound, _ in checks)
    report["ok"] = all(bound <= stated for bound, stated in checks)
    report["seconds"] = round(time.monotonic() - started, 1)

    if args.json:
        print(json.dumps(_json_safe(report), indent=2))
    else:
        print(f"noise: {report['noise_source']}; stated ε {report['stated_epsilon']:.4f} at δ {args.delta}")
        if "replay_audit" in report:
            r = report["replay_audit"]
            print(
                f"replay audit: {r['trials']} trials, TPR {r['tpr']:.3f} (≥ {r['tpr_low']:.3f}), FPR {r['fpr']:.3f} "
                f"(≤ {r['fpr_high']:.3f}), reproduced bit for bit {r['reproduced_bitwise']}, ε_lb {r['epsilon_lb']:.3f}"
            )
        if "one_run_audit" in report:
            o = report["one_run_audit"]
            for name, s in o["scores"].items():
                print(
                    f"one-run audit ({name}): m {o['canaries']}, k {o['k']}, correct {s['correct']}/{o['guesses']}, "
                    f"ε_lb {s['epsilon_lb']:.3f}"
                )
        print(f"ok: {report['ok']} ({report['seconds']} s)")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

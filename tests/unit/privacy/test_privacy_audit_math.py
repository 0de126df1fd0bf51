"""The statistics behind `tests/bench/privacy_audit.py`: Clopper–Pearson bounds, the
distinguishing-game ε lower bound, and the one-run audit's bound (Steinke, Nasr &
Jagielski 2023), against values worked out by hand. No training here."""

from __future__ import annotations

import math

import pytest

from tests.bench.privacy_audit import (
    clopper_pearson,
    distinguishing_epsilon_lb,
    one_run_epsilon_lb,
    one_run_p_value,
)


def test_clopper_pearson_against_hand_values() -> None:
    # The textbook exact 95 % interval for 5 of 10 is (0.1871, 0.8129): 2.5 % on each side.
    lower, upper = clopper_pearson(5, 10, 0.025)
    assert lower == pytest.approx(0.187086, abs=1e-6)
    assert upper == pytest.approx(0.812914, abs=1e-6)
    # At the edges the beta quantiles have closed forms: P[0 of n | p] = (1 − p)^n = α.
    assert clopper_pearson(0, 10, 0.05) == pytest.approx((0.0, 1 - 0.05**0.1))
    assert clopper_pearson(10, 10, 0.05) == pytest.approx((0.05**0.1, 1.0))
    assert clopper_pearson(0, 0, 0.05) == (0.0, 1.0)
    with pytest.raises(ValueError):
        clopper_pearson(11, 10, 0.05)


def test_distinguishing_bound_perfect_chance_and_delta() -> None:
    # 50 of 50 positives caught, none of 50 negatives: TPR ≥ 0.025^(1/50), FPR ≤ 1 − that.
    perfect = distinguishing_epsilon_lb(50, 50, 0, 50, delta=0.0, confidence=0.95)
    tpr_low = 0.025 ** (1 / 50)
    assert perfect["tpr_low"] == pytest.approx(tpr_low)
    assert perfect["fpr_high"] == pytest.approx(1 - tpr_low)
    assert perfect["epsilon_lb"] == pytest.approx(math.log(tpr_low / (1 - tpr_low)))  # 2.5696
    assert perfect["epsilon_lb"] == pytest.approx(2.5696, abs=1e-4)
    assert perfect["epsilon_point"] == math.inf
    # A coin-flipping attacker refutes nothing.
    assert distinguishing_epsilon_lb(25, 50, 25, 50, delta=0.0, confidence=0.95)["epsilon_lb"] == 0.0
    # δ only lowers the bound; more true positives only raise it; more trials raise a perfect one.
    with_delta = distinguishing_epsilon_lb(50, 50, 0, 50, delta=0.1, confidence=0.95)["epsilon_lb"]
    assert with_delta == pytest.approx(math.log((tpr_low - 0.1) / (1 - tpr_low)))
    bounds = [
        distinguishing_epsilon_lb(tp, 50, 5, 50, delta=1e-5, confidence=0.95)["epsilon_lb"] for tp in range(0, 51, 5)
    ]
    assert bounds == sorted(bounds) and bounds[0] == 0.0 and bounds[-1] > 1.0
    assert distinguishing_epsilon_lb(500, 500, 0, 500, delta=0.0, confidence=0.95)["epsilon_lb"] > perfect["epsilon_lb"]


def test_one_run_p_value_against_hand_values() -> None:
    # ε = 0, δ = 0: exactly the fair-coin tail P[Binomial(r, 1/2) ≥ v].
    assert one_run_p_value(10, 2, 2, 0.0, 0.0) == pytest.approx(0.25)
    assert one_run_p_value(1000, 200, 100, 0.0, 0.0) == pytest.approx(0.5 + math.comb(200, 100) / 2**201)
    # δ > 0, m = 10, r = v = 2, ε = 0: f(2) = 1/4; (f(1) − f(2)) / 1 = 1/2, (f(0) − f(2)) / 2 = 3/8;
    # so 1/4 + 2 · 10 · 0.01 · 1/2 = 0.35.
    assert one_run_p_value(10, 2, 2, 0.0, 0.01) == pytest.approx(0.35)
    # ε-DP randomised response's accuracy e^ε / (1 + e^ε), all r guesses right: q^r.
    q = math.exp(1.0) / (1 + math.exp(1.0))
    assert one_run_p_value(100, 20, 20, 1.0, 0.0) == pytest.approx(q**20)
    assert one_run_p_value(100, 20, 0, 1.0, 0.0) == 1.0
    # Grows with ε (the bisection in one_run_epsilon_lb relies on it).
    values = [one_run_p_value(1000, 200, 130, eps / 4, 1e-5) for eps in range(0, 20)]
    assert values == sorted(values)
    with pytest.raises(ValueError):
        one_run_p_value(10, 20, 5, 1.0, 0.0)


def test_one_run_epsilon_lb() -> None:
    # δ = 0 and every guess right: the bound solves q^r = β, so ε = log(q / (1 − q)), q = β^(1/r).
    for r in (20, 100, 200):
        q = 0.05 ** (1 / r)
        expected = math.log(q / (1 - q))
        assert one_run_epsilon_lb(1000, r, r, delta=0.0, confidence=0.95) == pytest.approx(expected, abs=1e-5)
    assert one_run_epsilon_lb(1000, 100, 100, delta=0.0, confidence=0.95) == pytest.approx(3.49297, abs=1e-4)
    # At the bound the p-value sits at 1 − confidence.
    eps = one_run_epsilon_lb(1000, 200, 150, delta=1e-5, confidence=0.95)
    assert one_run_p_value(1000, 200, 150, eps, 1e-5) == pytest.approx(0.05, abs=1e-4)
    # Chance-level guessing refutes nothing; more correct guesses never lower the bound;
    # δ > 0 never raises it; higher confidence never raises it.
    assert one_run_epsilon_lb(1000, 200, 100, delta=1e-5, confidence=0.95) == 0.0
    bounds = [one_run_epsilon_lb(1000, 200, v, delta=1e-5, confidence=0.95) for v in range(100, 201, 10)]
    assert bounds == sorted(bounds) and bounds[-1] > 4.0
    for v in (130, 170, 200):
        assert one_run_epsilon_lb(1000, 200, v, delta=1e-4, confidence=0.95) <= one_run_epsilon_lb(
            1000, 200, v, delta=0.0, confidence=0.95
        )
        assert one_run_epsilon_lb(1000, 200, v, delta=1e-5, confidence=0.99) <= one_run_epsilon_lb(
            1000, 200, v, delta=1e-5, confidence=0.95
        )

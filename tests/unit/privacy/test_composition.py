"""Composition of what a budget was charged (PLD, dp-accounting), and the bounds on calibration."""

from __future__ import annotations

import math

import pytest

from privet.governance.errors import InvalidArgument
from privet.governance.privacy import accounting
from privet.governance.privacy.accounting import Mechanism, calibrate_noise_multiplier, conservative_epsilon, epsilon_for, noise_multiplier_for
from privet.governance.privacy.composition import composed_epsilon
from privet.governance.privacy.limits import MAX_ACCOUNTED_EPSILON
from privet.governance.privacy.releases import Release

DELTA = 1e-5
# σ that every registered accountant agrees spends ε ≤ 1 over 1000 steps at q = 0.01 (δ 1e-5);
# calibrate_noise_multiplier(target_epsilon=1, delta=1e-5, sample_rate=0.01, steps=1000) gives it.
SIGMA_EPS1 = 1.5234375
RUN = Mechanism(SIGMA_EPS1, 0.01, 1000, DELTA)


def test_one_run_composes_to_about_what_its_accountants_give() -> None:
    own, _ = conservative_epsilon(RUN)
    composed = composed_epsilon(mechanisms=[RUN], delta=DELTA)
    assert 0.85 < composed <= own <= 1.0 + 1e-9
    assert composed == pytest.approx(epsilon_for(RUN, "prv"), rel=0.02)  # the same mechanism, the same relation


def test_eight_runs_of_epsilon_one_compose_to_far_less_than_eight() -> None:
    eight = composed_epsilon(mechanisms=[RUN] * 8, delta=DELTA)
    assert 2.7 < eight < 3.5  # about 2.75; the linear ledger charged 8


def test_pure_releases_compose_to_at_most_their_sum() -> None:
    releases = [Release("scale:age", "laplace", 0.1), Release("classes:label", "laplace", 0.2), Release("evaluation", "laplace", 0.3)]
    assert composed_epsilon(releases=releases, delta=DELTA) <= 0.6 + 1e-9
    with_run = composed_epsilon(mechanisms=[RUN], releases=releases, delta=DELTA)
    assert composed_epsilon(mechanisms=[RUN], delta=DELTA) < with_run <= conservative_epsilon(RUN)[0] + 0.6


def test_releases_whose_deltas_exceed_the_budgets_compose_to_no_finite_epsilon() -> None:
    # Each (ε, δ) release may disclose everything with probability δ: two of δ 1e-5 cannot
    # be (ε, 1e-5)-DP together for any ε.
    releases = [Release("domain:plan", "laplace-partition-selection", 0.5, DELTA)] * 2
    assert composed_epsilon(releases=releases, delta=DELTA) == math.inf
    assert math.isfinite(composed_epsilon(releases=releases, delta=3 * DELTA))


def test_nothing_charged_composes_to_zero() -> None:
    assert composed_epsilon(mechanisms=[Mechanism(1.0, 0.1, 0, DELTA)], delta=DELTA) == 0.0


def test_a_run_with_too_little_noise_to_hold_in_memory_is_refused_before_building_it() -> None:
    with pytest.raises(InvalidArgument) as caught:
        composed_epsilon(mechanisms=[Mechanism(1e-3, 1.0, 10, DELTA)], delta=DELTA)
    assert caught.value.field == "noise_multiplier"


def _no_opacus_search(**_kw):  # type: ignore[no-untyped-def]
    raise AssertionError("the accountants' search ran")


@pytest.mark.parametrize("target", [1000.0, 1e6, MAX_ACCOUNTED_EPSILON * 1.01, math.inf, math.nan, 0.0])
def test_a_huge_target_epsilon_is_refused_before_any_accountant_runs(monkeypatch: pytest.MonkeyPatch, target: float) -> None:
    # PRV's search at ε = 1000 reached 10 GB: refusing must not start it at all.
    import opacus.accountants.utils as utils

    monkeypatch.setattr(utils, "get_noise_multiplier", _no_opacus_search)
    for calibrate in (
        lambda: calibrate_noise_multiplier(target_epsilon=target, delta=DELTA, sample_rate=0.01, steps=1000),
        lambda: noise_multiplier_for(target_epsilon=target, delta=DELTA, sample_rate=0.01, steps=1000, accountant="prv"),
    ):
        with pytest.raises(InvalidArgument) as caught:
            calibrate()
        assert caught.value.field == "target_epsilon"


def test_calibration_is_the_largest_sigma_any_accountant_needs() -> None:
    kw = dict(target_epsilon=1.0, delta=DELTA, sample_rate=0.01, steps=1000)
    sigma = calibrate_noise_multiplier(**kw)  # type: ignore[arg-type]
    assert sigma == max(noise_multiplier_for(**kw, accountant=a) for a in accounting.accountant_names())  # type: ignore[arg-type]
    assert sigma == SIGMA_EPS1
    assert conservative_epsilon(Mechanism(sigma, 0.01, 1000, DELTA))[0] <= 1.0


def test_prv_refuses_a_mechanism_beyond_the_accountable_epsilon_and_the_conservative_figure_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    weak = Mechanism(0.3, 1.0, 100, DELTA)  # RDP ε ≈ 720; PRV would allocate gigabytes
    calls: list[str] = []
    real = accounting._opacus_epsilon

    def spy(name: str, mechanism: Mechanism) -> float:
        calls.append(name)
        return real(name, mechanism)

    monkeypatch.setattr(accounting, "_opacus_epsilon", spy)
    accounting._remembered_epsilon.cache_clear()  # the spy must see the accountants asked
    with pytest.raises(InvalidArgument) as caught:
        epsilon_for(weak, "prv")
    assert caught.value.field == "noise_multiplier" and calls == ["rdp"]
    eps, name = conservative_epsilon(weak)
    assert name == "rdp" and eps > MAX_ACCOUNTED_EPSILON and "prv" not in calls

"""governance.privacy.accounting agrees with Opacus's accountants step for step."""

from __future__ import annotations

import pytest
from opacus.accountants import create_accountant

from privet.governance.errors import InvalidArgument
from privet.governance.privacy.accounting import (
    DEFAULT_ACCOUNTANT,
    Mechanism,
    accountant_names,
    conservative_epsilon,
    epsilon_for,
    noise_multiplier_for,
)

# PRV's analysis takes log(1 - q), which numpy flags at q = 1; the bound is unaffected.
pytestmark = pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")

CASES = [
    Mechanism(noise_multiplier=1.1, sample_rate=0.01, steps=300, delta=1e-5),
    Mechanism(noise_multiplier=0.8, sample_rate=0.2, steps=10, delta=1e-3),
    Mechanism(noise_multiplier=3.0, sample_rate=1.0, steps=1, delta=1e-6),
]


def _opacus_stepped(name: str, m: Mechanism) -> float:
    """What an Opacus accountant says after seeing the optimizer's step hook m.steps times."""
    accountant = create_accountant(mechanism=name)
    for _ in range(m.steps):
        accountant.step(noise_multiplier=m.noise_multiplier, sample_rate=m.sample_rate)
    return accountant.get_epsilon(delta=m.delta)


def test_registry() -> None:
    assert accountant_names() == ("prv", "rdp")
    assert DEFAULT_ACCOUNTANT == "prv"


@pytest.mark.parametrize("name", ["prv", "rdp"])
@pytest.mark.parametrize("mechanism", CASES, ids=["q0.01", "q0.2", "q1"])
def test_epsilon_equals_opacus_accountant(name: str, mechanism: Mechanism) -> None:
    assert epsilon_for(mechanism, name) == _opacus_stepped(name, mechanism)


@pytest.mark.parametrize("name", ["prv", "rdp"])
def test_no_step_spends_nothing(name: str) -> None:
    assert epsilon_for(Mechanism(1.0, 0.1, 0, 1e-5), name) == 0.0


def test_conservative_epsilon_is_the_maximum() -> None:
    m = CASES[0]
    eps, name = conservative_epsilon(m)
    figures = {n: epsilon_for(m, n) for n in accountant_names()}
    assert eps == max(figures.values())
    assert figures[name] == eps
    assert conservative_epsilon(Mechanism(1.0, 0.1, 0, 1e-5)) == (0.0, "prv")


def test_epsilon_grows_with_steps() -> None:
    short = Mechanism(1.0, 0.05, 10, 1e-5)
    long = Mechanism(1.0, 0.05, 100, 1e-5)
    for name in accountant_names():
        assert 0 < epsilon_for(short, name) < epsilon_for(long, name)


@pytest.mark.parametrize("name", ["prv", "rdp"])
def test_noise_multiplier_for_reaches_the_target(name: str) -> None:
    sigma = noise_multiplier_for(target_epsilon=2.0, delta=1e-5, sample_rate=0.02, steps=200, accountant=name)
    assert epsilon_for(Mechanism(sigma, 0.02, 200, 1e-5), name) <= 2.0


def test_unreachable_target_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        noise_multiplier_for(target_epsilon=1e-9, delta=1e-5, sample_rate=1.0, steps=10, accountant="rdp")
    assert caught.value.field == "target_epsilon"


def test_unknown_accountant() -> None:
    with pytest.raises(InvalidArgument) as caught:
        epsilon_for(CASES[0], "gdp-ish")
    assert caught.value.field == "accountant"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"noise_multiplier": 0.0}, "noise_multiplier"),
        ({"noise_multiplier": float("inf")}, "noise_multiplier"),
        ({"sample_rate": 0.0}, "sample_rate"),
        ({"sample_rate": 1.5}, "sample_rate"),
        ({"steps": -1}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"delta": 0.0}, "delta"),
        ({"delta": 1.0}, "delta"),
    ],
)
def test_mechanism_validation(kwargs: dict, field: str) -> None:
    args = {"noise_multiplier": 1.0, "sample_rate": 0.1, "steps": 10, "delta": 1e-5, **kwargs}
    with pytest.raises(InvalidArgument) as caught:
        Mechanism(**args)
    assert caught.value.field == field

"""Privacy accounting: how much ε a run of the subsampled Gaussian mechanism spent.

The budget ledger stores each job's `Mechanism` (noise multiplier, sample rate, steps,
δ; the privacy unit is one row) and asks this module for ε, so a spend can be recomputed
and audited long after the job. Accountants sit behind one small interface and are
looked up by name; "prv" and "rdp" are Opacus's own, fed the job's history directly, so
the figures agree exactly with what Opacus reported during training.

Everything here is a pure function of its arguments. Composition of many mechanisms on one
budget is `governance.privacy.composition`'s job; the limits are `governance.privacy.limits`.
"""

from __future__ import annotations

import abc
import functools
import math
import warnings
from dataclasses import dataclass

from privet.governance.errors import InvalidArgument
from privet.governance.privacy.limits import MAX_ACCOUNTED_EPSILON, check_delta

__all__ = [
    "DEFAULT_ACCOUNTANT",
    "Accountant",
    "Mechanism",
    "accountant_names",
    "calibrate_noise_multiplier",
    "conservative_epsilon",
    "epsilon_for",
    "get_accountant",
    "noise_multiplier_for",
    "register_accountant",
]

DEFAULT_ACCOUNTANT = "prv"


@dataclass(frozen=True)
class Mechanism:
    """`steps` compositions of the Poisson-subsampled Gaussian mechanism.

    Requires noise_multiplier > 0, 0 < sample_rate <= 1, steps >= 0 (an integer) and
    0 < delta < 1; anything else raises InvalidArgument naming the field.
    """

    noise_multiplier: float
    sample_rate: float
    steps: int
    delta: float

    def __post_init__(self) -> None:
        if not (isinstance(self.noise_multiplier, (int, float)) and math.isfinite(self.noise_multiplier)) or (
            self.noise_multiplier <= 0
        ):
            raise InvalidArgument("noise_multiplier", f"must be a finite number > 0, got {self.noise_multiplier!r}")
        if not (isinstance(self.sample_rate, (int, float)) and 0 < self.sample_rate <= 1):
            raise InvalidArgument("sample_rate", f"must be in (0, 1], got {self.sample_rate!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise InvalidArgument("steps", f"must be an integer >= 0, got {self.steps!r}")
        check_delta("delta", self.delta)


class Accountant(abc.ABC):
    """Turns a mechanism into the ε it guarantees at its δ. Implementations are stateless."""

    name: str

    @abc.abstractmethod
    def epsilon(self, mechanism: Mechanism) -> float:
        """ε of `mechanism` at `mechanism.delta`; 0.0 when it took no step."""


class _OpacusAccountant(Accountant):
    """One of Opacus's accountants, given the whole history at once."""

    def __init__(self, name: str) -> None:
        self.name = name

    def epsilon(self, mechanism: Mechanism) -> float:
        if mechanism.steps == 0:
            return 0.0
        if self.name == "prv":
            # PRV's domain, hence its memory, grows with ε (ε ≈ 500 took 2.4 GB): ask the
            # analytic RDP bound first and refuse where it is beyond any accountable ε.
            bound = _opacus_epsilon("rdp", mechanism)
            if bound > MAX_ACCOUNTED_EPSILON:
                raise InvalidArgument(
                    "noise_multiplier",
                    f"too little noise to account with prv: RDP gives ε {bound:.4g}, above {MAX_ACCOUNTED_EPSILON:g}",
                )
        return _opacus_epsilon(self.name, mechanism)


def _opacus_epsilon(name: str, mechanism: Mechanism) -> float:
    from opacus.accountants import create_accountant  # heavy import, only when used

    accountant = create_accountant(mechanism=name)
    # The same (noise multiplier, sample rate, steps) triple the optimizer's step
    # hook accumulates, so this is what Opacus itself reports for the run.
    accountant.history = [(float(mechanism.noise_multiplier), float(mechanism.sample_rate), mechanism.steps)]
    with warnings.catch_warnings():
        # RDP warns when the best order is the largest it tries and PRV warns about
        # log(0) at q = 1; neither changes the bound it returns.
        warnings.simplefilter("ignore")
        return float(accountant.get_epsilon(delta=float(mechanism.delta)))


_REGISTRY: dict[str, Accountant] = {}


def register_accountant(accountant: Accountant) -> None:
    """Make `accountant` available under `accountant.name`. Raises ValueError if taken."""
    if accountant.name in _REGISTRY:
        raise ValueError(f"accountant {accountant.name!r} already registered")
    _REGISTRY[accountant.name] = accountant


def accountant_names() -> tuple[str, ...]:
    """Registered accountant names, in registration order."""
    return tuple(_REGISTRY)


def get_accountant(name: str) -> Accountant:
    """The accountant called `name`. Raises InvalidArgument("accountant") if unknown."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise InvalidArgument(
            "accountant", f"unknown accountant {name!r}; known: {', '.join(accountant_names())}"
        ) from None


def epsilon_for(mechanism: Mechanism, accountant: str) -> float:
    """ε spent by `mechanism` according to the accountant called `accountant`."""
    get_accountant(accountant)
    return _remembered_epsilon(mechanism, accountant)


# A mechanism (frozen) and an accountant name (never re-registered) always give the same ε;
# computing it costs up to seconds (PRV), and the ledger, the jobs and the reports ask again.
@functools.lru_cache(maxsize=4096)
def _remembered_epsilon(mechanism: Mechanism, accountant: str) -> float:
    return _REGISTRY[accountant].epsilon(mechanism)


def conservative_epsilon(mechanism: Mechanism) -> tuple[float, str]:
    """The largest ε any registered accountant gives, and which one gave it.

    This is a job's own figure: where sound accountants disagree, the higher bound is the
    one nobody can dispute. On a tie the earlier-registered name wins. An accountant that
    refuses the mechanism as beyond MAX_ACCOUNTED_EPSILON (InvalidArgument) is passed over:
    every other figure is still a valid bound, and all of them are beyond any budget.
    """
    best_eps, best_name = -1.0, ""
    refused: InvalidArgument | None = None
    for name in _REGISTRY:
        try:
            eps = _remembered_epsilon(mechanism, name)
        except InvalidArgument as exc:
            refused = exc
            continue
        if eps > best_eps:
            best_eps, best_name = eps, name
    if not best_name and refused is not None:
        raise refused
    return best_eps, best_name


def _check_calibration(target_epsilon: float, delta: float) -> None:
    # Before any accountant runs: a huge target makes PRV's search allocate without bound.
    if not (isinstance(target_epsilon, (int, float)) and 0 < target_epsilon <= MAX_ACCOUNTED_EPSILON):
        raise InvalidArgument("target_epsilon", f"must be in (0, {MAX_ACCOUNTED_EPSILON:g}] to calibrate noise, got {target_epsilon!r}")
    check_delta("delta", delta)


def calibrate_noise_multiplier(*, target_epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """The noise multiplier for `steps` steps at `sample_rate` that every registered
    accountant agrees spends at most `target_epsilon` at `delta`: the largest σ any of them
    needs, so that the conservative figure (`conservative_epsilon`) meets the target too.

    The one σ calibration in Privet: the scheduler and the worker both call it.
    Raises InvalidArgument("target_epsilon") for a target above MAX_ACCOUNTED_EPSILON
    (before any accountant runs) or one no sane noise reaches, InvalidArgument("delta")
    for δ outside (0, 1)."""
    _check_calibration(target_epsilon, delta)
    return max(
        noise_multiplier_for(target_epsilon=target_epsilon, delta=delta, sample_rate=sample_rate, steps=steps, accountant=name)
        for name in accountant_names()
    )


def noise_multiplier_for(
    *, target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str
) -> float:
    """The smallest noise multiplier (to Opacus's search tolerance) whose `steps` steps at
    `sample_rate` spend at most `target_epsilon` according to `accountant`.

    This is Opacus's own search (`get_noise_multiplier`), the one
    `make_private_with_epsilon` runs. Raises InvalidArgument("target_epsilon") when no
    noise multiplier up to Opacus's ceiling reaches the target, or when the target is above
    MAX_ACCOUNTED_EPSILON (refused before any accountant runs).
    """
    get_accountant(accountant)
    _check_calibration(target_epsilon, delta)
    return _searched_noise_multiplier(float(target_epsilon), float(delta), float(sample_rate), int(steps), accountant)


# The search is a pure function of its arguments and takes seconds (PRV): the scheduler, the
# worker and a job's submission each ask it for the same mechanism. Remembered per process.
@functools.lru_cache(maxsize=1024)
def _searched_noise_multiplier(target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str) -> float:
    from opacus.accountants.utils import get_noise_multiplier

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(
                get_noise_multiplier(
                    target_epsilon=float(target_epsilon),
                    target_delta=float(delta),
                    sample_rate=float(sample_rate),
                    steps=int(steps),
                    accountant=accountant,
                )
            )
    except ValueError as exc:
        raise InvalidArgument("target_epsilon", f"unreachable with any sane amount of noise ({exc})") from None


# PRV first: it is the default, and on a tie the first registered name is reported.
for _name in ("prv", "rdp"):
    register_accountant(_OpacusAccountant(_name))
del _name

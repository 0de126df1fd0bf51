"""A trained model's stated DP guarantee: DP-SGD and every other release, composed.

One JSON form, used by the job record, the registry's metadata and the audit events:

    epsilon, delta            the whole guarantee: sgd_epsilon + Σ releases' ε, sgd_delta + Σ δ
    sgd_epsilon, sgd_delta    the DP-SGD run's own (its most conservative accountant's figure)
    noise_multiplier, sample_rate, steps, max_grad_norm, accountant
                              the DP-SGD mechanism, enough to recompute sgd_epsilon
    releases                  [{purpose, mechanism, epsilon, delta}] — scales, domains,
                              classes, evaluation
    target_epsilon            what the job reserved
    neighbouring_relation     "add-remove-one": the datasets compared differ by one row
                              added or removed (what Opacus's accountants and the
                              mechanisms in dp_statistics are analysed for)
    privacy_unit              "row": one row of the masked table the job read; or
                              "person:<column>" when the job named a person key and kept
                              one row per person, so the guarantee holds per person

Composition is basic (sequential): ε and δ add. It holds whatever each mechanism saw of
the others' outputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeGuard

from privet.governance.errors import InvalidArgument
from privet.governance.privacy.accounting import Mechanism, epsilon_for
from privet.governance.privacy.limits import MAX_EPSILON, MAX_NOISE_MULTIPLIER, MAX_STEPS, MIN_SAMPLE_RATE
from privet.governance.privacy.releases import Release, releases_from_json, total_delta, total_epsilon

__all__ = ["DPGuarantee", "NEIGHBOURING_RELATION", "PRIVACY_UNIT", "check_stated_guarantee", "composed_guarantee", "is_real"]

NEIGHBOURING_RELATION = "add-remove-one"
PRIVACY_UNIT = "row"


@dataclass(frozen=True)
class DPGuarantee:
    """The (ε, δ) guarantee of a run, with everything needed to recompute it.

    `epsilon` is the spend according to `accountant`, the one Opacus tracked during
    training; `conservative_epsilon` is the largest figure any registered accountant
    gives (named by `conservative_accountant`), which the ledger charges.
    """

    epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    accountant: str
    max_grad_norm: float
    target_epsilon: float
    conservative_epsilon: float
    conservative_accountant: str
    privacy_unit: str = PRIVACY_UNIT
    poisson_sampling: bool = True

    def mechanism(self) -> Mechanism:
        return Mechanism(
            noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate, steps=self.steps, delta=self.delta
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)



def composed_guarantee(sgd: Mapping[str, Any], releases: Sequence[Release], *, target_epsilon: float, person_key: str = "") -> dict[str, Any]:
    """The stated guarantee of a job that reserved `target_epsilon`, whose DP-SGD run
    reported `sgd` (the worker's DPGuarantee.to_dict(): conservative_epsilon, delta,
    noise_multiplier, sample_rate, steps, conservative_accountant, max_grad_norm) and
    which made `releases`."""
    sgd_epsilon = float(sgd["conservative_epsilon"]) if sgd["steps"] else 0.0
    sgd_delta = float(sgd["delta"])
    return {
        "epsilon": math.fsum([sgd_epsilon, *(r.epsilon for r in releases)]),
        "delta": math.fsum([sgd_delta, *(r.delta for r in releases)]),
        "sgd_epsilon": sgd_epsilon,
        "sgd_delta": sgd_delta,
        "noise_multiplier": float(sgd["noise_multiplier"]),
        "sample_rate": float(sgd["sample_rate"]),
        "steps": int(sgd["steps"]),
        "max_grad_norm": float(sgd["max_grad_norm"]),
        "accountant": str(sgd["conservative_accountant"]),
        "releases": [r.to_dict() for r in releases],
        "target_epsilon": float(target_epsilon),
        "neighbouring_relation": NEIGHBOURING_RELATION,
        "privacy_unit": f"person:{person_key}" if person_key else PRIVACY_UNIT,
    }


def is_real(value: Any) -> TypeGuard[float]:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# What a stated DP-SGD guarantee must hold, in this order: (field, valid, what it must be).
# All of it, because a guarantee with a parameter missing (proto3 sends 0 for "unset") says
# nothing: an empty one would otherwise read as epsilon 0, the strongest there is.
_GUARANTEE_RULES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("epsilon", lambda v: is_real(v) and 0 < v <= MAX_EPSILON, f"must be a number in (0, {MAX_EPSILON:g}]"),
    ("delta", lambda v: is_real(v) and 0 < v < 1, "must be in (0, 1)"),
    ("noise_multiplier", lambda v: is_real(v) and 0 < v <= MAX_NOISE_MULTIPLIER, f"must be a number in (0, {MAX_NOISE_MULTIPLIER:g}]"),
    ("sample_rate", lambda v: is_real(v) and MIN_SAMPLE_RATE <= v <= 1, f"must be in [{MIN_SAMPLE_RATE:g}, 1]"),
    ("steps", lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_STEPS, f"must be a whole number in 1..{MAX_STEPS}"),
    ("accountant", lambda v: isinstance(v, str) and bool(v.strip()), 'must name the accountant (e.g. "prv" or "rdp")'),
    ("max_grad_norm", lambda v: is_real(v) and v > 0, "must be a finite number > 0 (the per-sample clipping norm)"),
)


def check_stated_guarantee(guarantee: Mapping[str, Any], *, field: str = "guarantee") -> None:
    """Refuse (InvalidArgument naming `field`.<part>) a stated guarantee that is incomplete,
    out of range, or smaller than its own parts say: ε below what its accountant gives for
    its mechanism, or, for a composed guarantee, below DP-SGD's ε at its own δ plus every
    release's ε (and δ likewise). Passing says the figures are consistent, not that Privet
    produced them."""
    for name, valid, what in _GUARANTEE_RULES:
        if not valid(guarantee.get(name)):
            raise InvalidArgument(f"{field}.{name}", what)
    # The gates read ε: it must be at least what the stated accountant gives for the stated
    # mechanism, or an understated ε would let a weaker model through them.
    mechanism = Mechanism(guarantee["noise_multiplier"], guarantee["sample_rate"], guarantee["steps"], guarantee["delta"])
    try:
        computed = epsilon_for(mechanism, guarantee["accountant"])
    except InvalidArgument as exc:
        raise InvalidArgument(f"{field}.accountant", exc.description) from None
    except (OverflowError, ValueError, FloatingPointError, ZeroDivisionError, MemoryError):
        raise InvalidArgument(f"{field}.noise_multiplier", "the stated mechanism cannot be accounted for (its figures are out of any accountant's range)") from None
    if guarantee["epsilon"] < computed * (1 - _EPSILON_RTOL):
        raise InvalidArgument(f"{field}.epsilon",
                              f"{guarantee['epsilon']:g} is below the {computed:.4g} that the {guarantee['accountant']} accountant "
                              "gives for the stated noise multiplier, sample rate, steps and delta")
    if guarantee.get("sgd_delta") or guarantee.get("releases"):
        _check_composition(guarantee, mechanism, field)


def _check_composition(guarantee: Mapping[str, Any], mechanism: Mechanism, field: str) -> None:
    """A composed guarantee (governance.privacy.guarantee): the DP-SGD part must be what
    its accountant gives at its own δ, and the whole at least the sum of its parts, so no
    part's ε or δ can be left out of the figure the gates read."""
    sgd_delta = guarantee.get("sgd_delta")
    if not (is_real(sgd_delta) and 0 < sgd_delta < 1):
        raise InvalidArgument(f"{field}.sgd_delta", "must be in (0, 1)")
    try:
        releases = releases_from_json(guarantee.get("releases") or [])
    except InvalidArgument as exc:
        raise InvalidArgument(f"{field}.releases", exc.message) from None
    computed = epsilon_for(Mechanism(mechanism.noise_multiplier, mechanism.sample_rate, mechanism.steps, sgd_delta), guarantee["accountant"])
    sgd_epsilon = guarantee.get("sgd_epsilon")
    if not (is_real(sgd_epsilon) and sgd_epsilon >= computed * (1 - _EPSILON_RTOL)):
        raise InvalidArgument(f"{field}.sgd_epsilon", f"must be at least the {computed:.4g} its accountant gives at sgd_delta")
    if guarantee["epsilon"] < total_epsilon([*releases]) + sgd_epsilon - _EPSILON_RTOL * guarantee["epsilon"]:
        raise InvalidArgument(f"{field}.epsilon", "is below sgd_epsilon plus the releases' ε")
    if guarantee["delta"] < total_delta([*releases]) + sgd_delta - _EPSILON_RTOL * guarantee["delta"]:
        raise InvalidArgument(f"{field}.delta", "is below sgd_delta plus the releases' δ")


# Room for the accountants' own numerical error when a stated ε is checked against them.
_EPSILON_RTOL = 1e-6

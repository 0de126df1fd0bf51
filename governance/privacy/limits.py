"""The privacy limits, in one place: what ε and δ Privet will hold, account for or calibrate.

Operators set their own, lower, policy in privet.toml (`[privacy] max_dataset_epsilon`,
`max_dataset_delta`); these are the hard bounds nothing may exceed, whatever a setting, an
upload or a stated guarantee says. Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import math

from privet.governance.errors import InvalidArgument

__all__ = [
    "DEFAULT_MAX_DATASET_DELTA",
    "DEFAULT_MAX_DATASET_EPSILON",
    "MAX_ACCOUNTED_EPSILON",
    "MAX_EPSILON",
    "MAX_NOISE_MULTIPLIER",
    "MAX_STEPS",
    "MICRO",
    "MIN_SAMPLE_RATE",
    "check_delta",
    "check_epsilon",
    "from_micro",
    "representable",
    "check_delta_for_rows",
    "to_micro",
]

# The largest ε any budget, reservation, charge or stated guarantee may hold. Far weaker than
# any guarantee worth the name, yet its micro-ε (the ledger's BIGINT columns) and its
# thousandths (the release gates' Cedar integers) both fit a signed 64-bit integer with room.
MAX_EPSILON = 1e6

# Above this ε no accountant is asked for a tight figure and no noise multiplier is
# calibrated: PRV's domain (and memory) grows with ε (ε = 500 took 2.4 GB, ε = 1000 reached
# 10 GB), while a guarantee this weak protects nothing. An operator's cap must lie below it.
MAX_ACCOUNTED_EPSILON = 100.0

# The range of a DP-SGD mechanism Privet accounts for, whether it ran it or a guarantee states
# it: beyond these the accountants overflow or take minutes (σ = 1e300, q = 1e-300 raised an
# OverflowError; 2**62 steps ran past any deadline), and no real training run comes near.
MAX_NOISE_MULTIPLIER = 1e4
MIN_SAMPLE_RATE = 1e-9
MAX_STEPS = 10_000_000

# The operator's policy when privet.toml says nothing: the most a dataset's budget may be.
DEFAULT_MAX_DATASET_EPSILON = 10.0
DEFAULT_MAX_DATASET_DELTA = 1e-5

# ε is stored as integer micro-ε: sums and comparisons in SQL never drift.
MICRO = 1_000_000


def to_micro(epsilon: float) -> int:
    """ε to integer micro-ε, rounding up: the ledger errs on the side of spending more."""
    return -int(-epsilon * MICRO // 1)


def from_micro(value: int) -> float:
    return value / MICRO


def representable(epsilon: float) -> bool:
    """Whether the ledger can hold `epsilon`: finite, not negative, at most MAX_EPSILON."""
    return math.isfinite(epsilon) and 0 <= epsilon <= MAX_EPSILON


def check_epsilon(field: str, epsilon: float) -> None:
    """InvalidArgument naming `field` unless `epsilon` is a budget the ledger can hold."""
    if not (isinstance(epsilon, (int, float)) and representable(epsilon) and epsilon > 0):
        raise InvalidArgument(field, f"must be finite, positive and at most {MAX_EPSILON:g}, got {epsilon!r}")


def check_delta(field: str, delta: float) -> None:
    """InvalidArgument naming `field` unless `delta` is a δ a budget, job or mechanism may
    have: a number in (0, 1). (A release's own δ may be 0: `Release` checks that.)"""
    if not (isinstance(delta, (int, float)) and 0 < delta < 1):
        raise InvalidArgument(field, f"must be in (0, 1), got {delta!r}")


def check_delta_for_rows(field: str, delta: float, rows: int) -> None:
    """`check_delta`, and δ below 1/n for `rows` rows: a δ of 1/n or more allows a mechanism
    that publishes one row outright."""
    check_delta(field, delta)
    if delta >= 1 / rows:
        raise InvalidArgument(field, f"δ {delta:g} is not below 1/n = {1 / rows:.3g} for {rows} rows: it would allow releasing a whole row")

"""DP statistics a training job publishes besides its weights: scales, domains, evaluation.

Every function here is an ε-DP (or (ε, δ)-DP) mechanism under the add/remove-one-row
relation, where each row contributes one value to the statistic (a row of a column, a
row's label, a row's evaluation cell), and draws its randomness from a `SecureRandom`.
Each returns what it may publish and nothing else: the exact counts and values it saw
stay inside.

- `laplace_partition_selection`: which values of a column to keep as its category domain
  (or which labels as a classifier's classes). Each present value's count gets Laplace
  noise of scale 1/ε and survives above τ = 1 + ln(1/(2δ))/ε: a value held by one row
  survives with probability at most δ, so a category that occurs in one row
  (`plan = hiv-clinic-referral`) is almost never published. (ε, δ)-DP because a row
  changes one count by one (Korolova et al. 2009; Desfontaines et al. 2022).
- `exponential_quantile`: a quantile of a numeric column from a fixed public grid, by the
  exponential mechanism (utility −|#{x < g} − p·n|, sensitivity 1; Smith 2011), drawn
  with the Gumbel-max trick. ε-DP. Two of them (5th and 95th percentiles) bound a
  column's scaling.
- `noisy_histogram`: Laplace noise of scale 1/ε on every cell of a histogram each row
  falls into once; ε-DP. Held-out evaluation is such a histogram.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from privet.governance.privacy.secure_random import SecureRandom

__all__ = [
    "QUANTILE_GRID",
    "exponential_quantile",
    "laplace",
    "laplace_partition_selection",
    "noisy_histogram",
    "partition_threshold",
]


def _log_grid() -> np.ndarray:
    """0 and ±10^k for k from −4 to 12 in steps of 1/40 decade (about 6 % apart): a
    public grid, fixed before any data is seen, covering any sensible numeric column."""
    magnitudes = 10.0 ** np.arange(-4.0, 12.0 + 1e-9, 1.0 / 40.0)
    return np.concatenate((-magnitudes[::-1], [0.0], magnitudes))


#: The candidate values of every DP quantile.
QUANTILE_GRID = _log_grid()


def laplace(scale: float, size: int, random: SecureRandom) -> np.ndarray:
    """`size` draws of Laplace(0, scale): the difference of two exponentials of mean
    `scale` (uniforms in (0, 1], so every logarithm is finite)."""
    u = random.uniform(2 * size)
    draws: np.ndarray = scale * (np.log(u[:size]) - np.log(u[size:]))
    return draws


def partition_threshold(epsilon: float, delta: float) -> float:
    """τ of Laplace partition selection with one contribution per row."""
    return 1.0 + math.log(1.0 / (2.0 * delta)) / epsilon


def laplace_partition_selection(counts: Mapping[str, int], *, epsilon: float, delta: float, random: SecureRandom) -> list[str]:
    """The values whose noisy count exceeds τ, sorted. `counts` holds each value present
    in the data with its number of rows (each row contributing to at most one value).
    Requires epsilon > 0 and 0 < delta < 1. (ε, δ)-DP."""
    if not (epsilon > 0 and 0 < delta < 1):
        raise ValueError("epsilon must be > 0 and delta in (0, 1)")
    values = sorted(counts)
    if not values:
        return []
    noisy = np.asarray([counts[v] for v in values], dtype=np.float64) + laplace(1.0 / epsilon, len(values), random)
    threshold = partition_threshold(epsilon, delta)
    return [v for v, c in zip(values, noisy) if c > threshold]


def exponential_quantile(
    values: np.ndarray, p: float, *, epsilon: float, random: SecureRandom, grid: np.ndarray = QUANTILE_GRID
) -> float:
    """A grid value near the `p`-quantile of `values` (finite floats; NaN rows are
    ignored, which is a row-by-row filter and so costs nothing extra). ε-DP."""
    if not (0 <= p <= 1 and epsilon > 0):
        raise ValueError("p must be in [0, 1] and epsilon > 0")
    present = np.sort(values[np.isfinite(values)])
    below = np.searchsorted(present, grid, side="left")  # #{x < g} for each candidate
    utility = -np.abs(below - p * present.size)
    u = np.minimum(random.uniform(grid.size), 1.0 - 2.0**-53)
    gumbel = -np.log(-np.log(u))
    return float(grid[int(np.argmax(epsilon * utility / 2.0 + gumbel))])


def noisy_histogram(counts: np.ndarray, *, epsilon: float, random: SecureRandom) -> np.ndarray:
    """`counts` (each row in exactly one cell) plus Laplace(1/ε) per cell, clipped at 0
    (post-processing). ε-DP."""
    if not epsilon > 0:
        raise ValueError("epsilon must be > 0")
    flat = np.asarray(counts, dtype=np.float64).reshape(-1)
    noisy = flat + laplace(1.0 / epsilon, flat.size, random)
    histogram: np.ndarray = np.maximum(noisy, 0.0).reshape(np.shape(counts))
    return histogram

"""DP releases other than DP-SGD that a training job makes from its private data.

A training job publishes more than weights: the scaling of numeric inputs, the category
domains and class labels it chose, and its held-out evaluation. Each is either declared
public by the job's owner (no release, nothing charged) or computed by a DP mechanism
with its own (ε, δ), which is charged to the dataset's budget beside the DP-SGD run and
composed into the job's stated guarantee.

`Release` is that record: what was released, by which mechanism, at what (ε, δ) under
the add/remove-one-row relation. The ledger stores one entry per release.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from privet.governance.errors import InvalidArgument

__all__ = ["Release", "releases_from_json", "total_epsilon", "total_delta"]


@dataclass(frozen=True)
class Release:
    """One DP release. `purpose` says what it published ("scale:age", "domain:plan",
    "classes:churned", "evaluation"); `mechanism` how ("laplace", "laplace-partition-selection",
    "laplace-quantile"). Requires 0 < epsilon < inf and 0 <= delta < 1."""

    purpose: str
    mechanism: str
    epsilon: float
    delta: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.epsilon, (int, float)) and math.isfinite(self.epsilon) and self.epsilon > 0):
            raise InvalidArgument("release.epsilon", f"must be a finite number > 0, got {self.epsilon!r}")
        if not (isinstance(self.delta, (int, float)) and 0 <= self.delta < 1):
            raise InvalidArgument("release.delta", f"must be in [0, 1), got {self.delta!r}")
        if not self.purpose or not self.mechanism:
            raise InvalidArgument("release", "purpose and mechanism must be named")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def releases_from_json(items: Any) -> tuple[Release, ...]:
    """Releases from their `to_dict()` forms. InvalidArgument("releases") if malformed."""
    try:
        return tuple(
            Release(str(i["purpose"]), str(i["mechanism"]), float(i["epsilon"]), float(i.get("delta", 0.0)))
            for i in items or ()
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidArgument("releases", f"malformed release ({exc!r})") from None


def total_epsilon(releases: tuple[Release, ...] | list[Release]) -> float:
    """Basic (sequential) composition: ε adds up. Conservative, and exact for pure ε-DP."""
    return math.fsum(r.epsilon for r in releases)


def total_delta(releases: tuple[Release, ...] | list[Release]) -> float:
    return math.fsum(r.delta for r in releases)

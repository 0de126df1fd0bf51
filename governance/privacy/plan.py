"""How a training job divides its ε and δ between DP-SGD and its other DP releases.

A job reserves `target_epsilon` at `delta` and publishes, besides weights, whatever its
owner did not declare public: numeric scales, category domains, the class list, and
always its held-out evaluation. Each of those is a DP release with its own share; DP-SGD
is calibrated for what is left. By basic composition the job's guarantee is then
(ε_sgd + Σ εᵢ, δ_sgd + Σ δᵢ) ≤ (target ε, δ) — sequential, so it holds for any order and
any adaptivity, and it is what the job states.

Shares: 10 % of ε for the preprocessing statistics the job needs (split evenly between
them), 10 % for evaluation, 2 % for the training rows' count (DP-SGD's sampling rate and
step count are set from it, so they reveal no exact count), and 1 % of δ for partition
selections (split evenly: every selection's δ is spent from the data's δ for good, so it is
kept small). Declare bounds, domains and classes to give DP-SGD all but 12 %.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from privet.governance.errors import InvalidArgument
from privet.governance.privacy.limits import check_delta
from privet.governance.privacy.releases import Release

__all__ = ["COUNT_SHARE", "EVALUATION_SHARE", "PREPROCESSING_SHARE", "SELECTION_DELTA_SHARE", "PrivacyPlan", "plan_job", "planned_selection_delta"]

PREPROCESSING_SHARE = 0.10
EVALUATION_SHARE = 0.10
COUNT_SHARE = 0.02
SELECTION_DELTA_SHARE = 0.01

#: What each kind of release is, by purpose prefix.
QUANTILES = "exponential-quantile"
SELECTION = "laplace-partition-selection"
HISTOGRAM = "laplace-histogram"
COUNT = "laplace-count"


@dataclass(frozen=True)
class PrivacyPlan:
    """The job's shares. `releases` are the planned DP releases other than DP-SGD."""

    target_epsilon: float
    delta: float
    sgd_epsilon: float
    sgd_delta: float
    releases: tuple[Release, ...]

    def release(self, purpose: str) -> Release:
        for r in self.releases:
            if r.purpose == purpose:
                return r
        raise KeyError(purpose)


def plan_job(
    *,
    target_epsilon: float,
    delta: float,
    scaled_columns: Sequence[str] = (),
    selected_columns: Sequence[str] = (),
    select_classes_of: str | None = None,
) -> PrivacyPlan:
    """The plan for a job whose owner left `scaled_columns` (numeric: DP bounds) and
    `selected_columns` (strings: DP domains) undeclared, and `select_classes_of` (the
    target) when the classes are undeclared. The row count and evaluation are always
    planned.

    Requires target_epsilon > 0 and 0 < delta < 1 (InvalidArgument naming the field)."""
    if not target_epsilon > 0:
        raise InvalidArgument("target_epsilon", "must be > 0")
    check_delta("delta", delta)
    selections = [f"domain:{c}" for c in selected_columns] + ([f"classes:{select_classes_of}"] if select_classes_of else [])
    scales = [f"scale:{c}" for c in scaled_columns]
    needs = len(selections) + len(scales)
    per_need = PREPROCESSING_SHARE * target_epsilon / needs if needs else 0.0
    per_selection_delta = planned_selection_delta(delta, len(selections)) / len(selections) if selections else 0.0
    releases = [Release(p, QUANTILES, per_need) for p in scales]
    releases += [Release(p, SELECTION, per_need, per_selection_delta) for p in selections]
    releases.append(Release("rows", COUNT, COUNT_SHARE * target_epsilon))
    releases.append(Release("evaluation", HISTOGRAM, EVALUATION_SHARE * target_epsilon))
    spent_eps = sum(r.epsilon for r in releases)
    spent_delta = sum(r.delta for r in releases)
    return PrivacyPlan(
        target_epsilon=target_epsilon,
        delta=delta,
        sgd_epsilon=target_epsilon - spent_eps,
        sgd_delta=delta - spent_delta,
        releases=tuple(releases),
    )


def planned_selection_delta(delta: float, selections: int) -> float:
    """The δ a job with `selections` partition selections spends from the data's δ: known
    at submit, so a job that would exhaust it is refused before it touches the data."""
    return SELECTION_DELTA_SHARE * delta if selections else 0.0

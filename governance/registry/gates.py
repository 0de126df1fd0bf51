"""The facts a release gate decides over, as a Cedar entity, and its denials in plain words.

The rules, and what each says when it denies (its @reason), live in
`policies/release.cedar`; this module only states the facts (exactly: epsilon and delta
become integers, rounded up so that rounding never lets a value through) and fills them
into the reasons of the policies that denied.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from privet.governance.policy.engine import DEFAULT_DENY, NAMESPACE, fill_reason

__all__ = ["DATASET_SPEND_POLICY", "ReleaseFacts", "Stage", "metrics_shortfalls", "reasons_for", "served_model_entity"]

# The policy that holds the lineage dataset's cumulative spend to the operator's cap.
DATASET_SPEND_POLICY = "dataset-cumulative-epsilon-within-cap"


class Stage:
    REGISTERED = "REGISTERED"
    CANDIDATE = "CANDIDATE"
    APPROVED = "APPROVED"
    RELEASED = "RELEASED"
    REVOKED = "REVOKED"
    ORDER = (REGISTERED, CANDIDATE, APPROVED, RELEASED, REVOKED)


# Cedar's integers are signed 64-bit; one outside that range fails the whole request (every
# transition of the version, revocation included), so a scaled value saturates instead.
_CEDAR_LONG_MIN, _CEDAR_LONG_MAX = -(2**63), 2**63 - 1


def _scaled_down(value: float, scale: int) -> int:
    """`value * scale` rounded down, exactly, saturated: for a limit, so rounding never
    lets a value through."""
    if not math.isfinite(value):
        return _CEDAR_LONG_MAX if value > 0 else _CEDAR_LONG_MIN
    exact = int((Decimal(repr(float(value))) * scale).to_integral_value(rounding=ROUND_FLOOR))
    return max(_CEDAR_LONG_MIN, min(exact, _CEDAR_LONG_MAX))


def _scaled_up(value: float | None, scale: int) -> int:
    """`value * scale` rounded up, exactly (no binary floating-point error), saturated at
    Cedar's integer range; not a number (NaN, infinity) reads as the largest, which no limit passes."""
    if value is None:
        return 0
    if not math.isfinite(value):
        return _CEDAR_LONG_MAX
    exact = int((Decimal(repr(float(value))) * scale).to_integral_value(rounding=ROUND_CEILING))
    return max(_CEDAR_LONG_MIN, min(exact, _CEDAR_LONG_MAX))


def metrics_shortfalls(metrics: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    """Plain-word description of every threshold a metric does not meet (missing = unmet)."""
    out = []
    for name in sorted(thresholds):
        minimum = thresholds[name]
        if name not in metrics:
            out.append(f"metric {name!r} is missing (threshold {minimum:g})")
        elif not metrics[name] >= minimum:
            out.append(f"metric {name!r} is {metrics[name]:g}, below the threshold {minimum:g}")
    return out


@dataclass(frozen=True)
class ReleaseFacts:
    """What a gate knows about a version at the moment of a transition."""

    version_id: str
    model: str
    version: int
    stage: str
    owner: str
    trainer: str
    requester: str
    approvers: tuple[str, ...]
    trained_on_personal_data: bool
    has_guarantee: bool
    epsilon: float | None
    delta: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    # The composed ε spent so far on the privacy budget of the dataset the lineage names
    # (every job on the same data, this one included; None: no dataset the platform holds),
    # and the operator's cap on it ([privacy] max_dataset_epsilon; None: no cap).
    dataset_epsilon_spent: float | None = None
    dataset_epsilon_cap: float | None = None
    team: str = ""  # the model owner's team
    provenance: str = "claimed"  # or "established" (governance/registry/established.py)
    kind: str = "trained"  # or "base": a pre-trained model jobs fine-tune (governance/registry/base_models.py)
    license: str = ""  # a base's SPDX license id, as its uploader stated it
    base_released: bool = True  # a fine-tuned version's base is RELEASED now (True: no base)

    @property
    def shortfalls(self) -> list[str]:
        return metrics_shortfalls(self.metrics, self.thresholds)

    def entity(self) -> dict[str, Any]:
        """The `Privet::ModelVersion` entity (JSON form) for a Cedar request."""
        return {
            "uid": {"type": f"{NAMESPACE}::ModelVersion", "id": self.version_id},
            "attrs": {
                "model": self.model,
                "version": self.version,
                "stage": self.stage,
                "owner": self.owner,
                "trainer": self.trainer,
                "requester": self.requester,
                "approvers": sorted(self.approvers),
                "team": self.team,
                "provenance": self.provenance,
                "kind": self.kind,
                "license": self.license,
                "base_released": self.base_released,
                "trained_on_personal_data": self.trained_on_personal_data,
                "has_guarantee": self.has_guarantee,
                "epsilon_milli": _scaled_up(self.epsilon, 1000) if self.has_guarantee else 0,
                "delta_ppb": _scaled_up(self.delta, 10**9) if self.has_guarantee else 0,
                "metrics_ok": not self.shortfalls,
                "dataset_epsilon_spent_milli": _scaled_up(self.dataset_epsilon_spent, 1000),
                "dataset_epsilon_cap_milli": _CEDAR_LONG_MAX if self.dataset_epsilon_cap is None else _scaled_down(self.dataset_epsilon_cap, 1000),
            },
            "parents": [],
        }

    def audit_details(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "trainer": self.trainer,
            "requester": self.requester,
            "approvers": sorted(self.approvers),
            "provenance": self.provenance,
            "kind": self.kind,
            **({"license": self.license} if self.kind == "base" else {}),
            "trained_on_personal_data": self.trained_on_personal_data,
            "has_guarantee": self.has_guarantee,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "metrics": self.metrics,
            "thresholds": self.thresholds,
            "dataset_epsilon_spent": self.dataset_epsilon_spent,
            "dataset_epsilon_cap": self.dataset_epsilon_cap,
        }


def served_model_entity(name: str, version: int, stage: str, epsilon: float | None, owner: str) -> dict[str, Any]:
    """The `Privet::ServedModel` entity a per-request inference decision is made over, with
    ε in thousandths rounded up, exactly as the release gates state it (rounding never lets a
    value through a limit)."""
    return {"uid": {"type": f"{NAMESPACE}::ServedModel", "id": f"{name}:{version}"},
            "attrs": {"name": name, "version": version, "stage": stage, "epsilon_milli": _scaled_up(epsilon, 1000), "owner": owner}, "parents": []}


def reasons_for(policy_ids: tuple[str, ...], facts: ReleaseFacts, caller: str, action: str, reason_of: Callable[[str], str | None]) -> tuple[str, ...]:
    """One plain-word sentence per denying policy: its @reason annotation (the policy file
    is the one home of both the rule and what it says), filled in from the facts; a policy
    without one gets a generic sentence. Metric shortfalls are listed one by one."""
    values = {
        "caller": caller, "action": action.removeprefix("model."), "license": facts.license or "none",
        "epsilon": _g(facts.epsilon), "delta": _g(facts.delta),
        "dataset_epsilon_spent": _g(facts.dataset_epsilon_spent), "dataset_epsilon_cap": _g(facts.dataset_epsilon_cap),
    }
    out: list[str] = []
    for pid in policy_ids:
        if pid == "metrics-meet-thresholds":
            out.extend(facts.shortfalls or ["the metrics do not meet the recorded thresholds"])
        elif pid == DEFAULT_DENY:
            out.append(f"no policy permits {caller} to {values['action']} this version")
        else:
            template = reason_of(pid)
            out.append(fill_reason(template, values) if template else f"denied by policy {pid}")
    return tuple(out)


def _g(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"

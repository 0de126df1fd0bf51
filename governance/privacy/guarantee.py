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
from collections.abc import Mapping, Sequence
from typing import Any

from governance.privacy.releases import Release

__all__ = ["NEIGHBOURING_RELATION", "PRIVACY_UNIT", "composed_guarantee"]

NEIGHBOURING_RELATION = "add-remove-one"
PRIVACY_UNIT = "row"


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

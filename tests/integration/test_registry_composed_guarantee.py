"""The registry checks a composed guarantee (DP-SGD + the job's other DP releases): the
figure the gates read can leave out no part's ε or δ."""

from __future__ import annotations

import pytest

from privet.governance.errors import InvalidArgument
from privet.governance.privacy.accounting import Mechanism, epsilon_for
from privet.governance.registry import ModelRegistry, VersionSpec
from privet.governance.runtime import Runtime
from tests.integration.test_registry_review_fixes import _p, _uploads, _weights

SGD_DELTA = 9e-7
SGD_EPSILON = epsilon_for(Mechanism(1.1, 0.01, 500, SGD_DELTA), "prv")
RELEASES = [
    {"purpose": "domain:plan", "mechanism": "laplace-partition-selection", "epsilon": 0.2, "delta": 1e-7},
    {"purpose": "evaluation", "mechanism": "laplace-histogram", "epsilon": 0.3, "delta": 0.0},
]
COMPOSED = {
    "epsilon": SGD_EPSILON + 0.5, "delta": 1e-6, "noise_multiplier": 1.1, "sample_rate": 0.01, "steps": 500, "accountant": "prv",
    "max_grad_norm": 1.0, "sgd_epsilon": SGD_EPSILON, "sgd_delta": SGD_DELTA, "releases": RELEASES, "neighbouring_relation": "add-remove-one",
}


@pytest.fixture
def registry(sqlite_runtime: Runtime) -> ModelRegistry:
    return ModelRegistry(sqlite_runtime)


def test_a_composed_guarantee_registers_and_keeps_its_parts(registry, sqlite_runtime) -> None:
    version = registry.create_version(_p(sqlite_runtime, "user/alice"), VersionSpec("m", trained_on_personal_data=True, guarantee=COMPOSED), [_weights()])
    assert version.guarantee["releases"] == RELEASES and version.guarantee["sgd_delta"] == SGD_DELTA


@pytest.mark.parametrize("field,change", [
    ("epsilon", {"epsilon": SGD_EPSILON + 0.1}),                   # the releases' 0.5 left out
    ("delta", {"delta": SGD_DELTA}),                               # the selection's δ left out
    ("sgd_epsilon", {"sgd_epsilon": SGD_EPSILON / 2}),              # DP-SGD's part understated
    ("sgd_delta", {"sgd_delta": 0.0, "releases": RELEASES}),        # no δ to check DP-SGD at
    ("releases", {"releases": [{"purpose": "evaluation", "mechanism": "laplace-histogram", "epsilon": -1}]}),
])
def test_a_composed_guarantee_missing_a_part_is_refused(registry, sqlite_runtime, field, change) -> None:
    with pytest.raises(InvalidArgument) as err:
        registry.create_version(_p(sqlite_runtime, "user/alice"), VersionSpec("m", trained_on_personal_data=True, guarantee=COMPOSED | change), [_weights()])
    assert err.value.field == f"metadata.guarantee.{field}"
    assert list(sqlite_runtime.blobs.digests()) == [] and _uploads(sqlite_runtime) == []

"""A version's metadata must describe its weights (issue 19, item 4): the registry refuses
one that does not, and inference answers a version it cannot load without reloading it."""

from __future__ import annotations

import json

import grpc
import pytest
from sqlalchemy import select, update

from privet.governance.errors import InvalidArgument
from privet.governance.registry import ModelRegistry, VersionSpec
from privet.governance.store.registry_tables import ModelVersion
from privet.governance.store.tables import AuditEvent
from privet.kserve.v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.helpers import channel
from tests.integration.test_inference import _model_bytes, _request, release_toy

INPUTS = [{"name": "age", "datatype": "FP64", "shape": [-1]}, {"name": "plan", "datatype": "BYTES", "shape": [-1]}]


def _p(rt, who: str):
    return rt.policies.engine.directory.principals[who]


@pytest.mark.parametrize("lie", [
    lambda m: m["model"].update(n_features=1_000_000),
    lambda m: m["model"].update(n_classes=7),
    lambda m: m["model"].update(arch="mlp", hparams={}),
    lambda m: m["preprocessor"]["columns"].pop(),
    lambda m: m.pop("labels"),
])
def test_the_registry_refuses_metadata_that_does_not_describe_the_weights(sqlite_runtime, lie) -> None:
    weights, meta = _model_bytes()
    lie(meta)
    with pytest.raises(InvalidArgument) as err:
        ModelRegistry(sqlite_runtime).create_version(_p(sqlite_runtime, "user/alice"), VersionSpec("m", architecture="logreg", preprocessing_json=json.dumps(meta), inputs=INPUTS), [weights])
    assert err.value.field in ("metadata.preprocessing_json", "metadata.architecture", "metadata", "metadata.inputs")
    assert list(sqlite_runtime.blobs.digests()) == []
    _, honest = _model_bytes()
    assert ModelRegistry(sqlite_runtime).create_version(_p(sqlite_runtime, "user/alice"), VersionSpec("m", architecture="logreg", preprocessing_json=json.dumps(honest), inputs=INPUTS), [weights]).version == 1


def test_inference_answers_an_unloadable_version_without_reloading_it(servers, sqlite_runtime) -> None:
    rt, home = sqlite_runtime, sqlite_runtime.home
    version, _, meta = release_toy(home, servers["registry"])
    # A row registered before the check: metadata that does not fit its weights.
    meta["model"]["n_features"] = 100_000
    rt.write(lambda s: s.execute(update(ModelVersion).where(ModelVersion.model_name == "churn").values(preprocessing_json=json.dumps(meta))))
    with channel(home, "app", servers["inference"]) as ch:
        infer = pb_grpc.GRPCInferenceServiceStub(ch)
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as err:
                infer.ModelInfer(_request(), timeout=30)
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "cannot be served" in err.value.details()
    with rt.read() as session:
        downloads = session.scalars(select(AuditEvent).where(AuditEvent.action == "registry.DownloadWeights")).all()
    assert len(downloads) == 1  # loaded once, refused from memory after


@pytest.mark.parametrize("spec,field", [
    (VersionSpec("m", preprocessing_json="[" * 100_000 + "]" * 100_000), "metadata.preprocessing_json"),
    (VersionSpec("m", guarantee={"epsilon": 1e-300, "delta": 1e-5, "noise_multiplier": 1e300, "sample_rate": 1e-300, "steps": 1, "accountant": "prv", "max_grad_norm": 1.0}),
     "metadata.guarantee.noise_multiplier"),
    (VersionSpec("m", guarantee={"epsilon": 5.0, "delta": 1e-5, "noise_multiplier": 50.0, "sample_rate": 0.01, "steps": 2**62, "accountant": "prv", "max_grad_norm": 1.0}),
     "metadata.guarantee.steps"),
])
def test_hostile_metadata_is_invalid_argument_not_an_internal_error(sqlite_runtime, spec, field) -> None:
    """Red team F8: these reached the registry's parser and accountant as INTERNAL errors."""
    weights, _ = _model_bytes()
    with pytest.raises(InvalidArgument) as err:
        ModelRegistry(sqlite_runtime).create_version(_p(sqlite_runtime, "user/alice"), spec, [weights])
    assert err.value.field == field

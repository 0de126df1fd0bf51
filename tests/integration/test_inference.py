"""InferenceService: tritonclient round trip over mTLS, released versions only, policy on every
request, quotas, validation, reload without restart, revocation, audit counts, no plaintext
weights on disk."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time

import grpc
import numpy as np
import pyarrow as pa
import pytest
import torch
from sqlalchemy import select

from privet.common.v1 import types_pb2
from privet.governance.architectures.models import ModelSpec, export_weights, load_model
from privet.governance.architectures.tabular import ClassLabels, TabularPreprocessor
from privet.governance.runtime import Runtime
from privet.governance.store.tables import AuditEvent
from privet.kserve.v2 import grpc_predict_v2_pb2 as pb
from privet.kserve.v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from tests.helpers import bad_request_fields, channel, error_info, eventually

CLIENT = pathlib.Path(__file__).with_name("triton_client.py")
TRAIN = pa.table({"age": [23.0, 45.0, 31.0, 60.0, 52.0, 38.0], "plan": ["basic", "plus", "basic", "premium", "plus", "basic"], "churned": [1, 0, 1, 0, 0, 1]})


def _model_bytes() -> tuple[bytes, dict]:
    torch.manual_seed(0)
    pre = TabularPreprocessor.build(TRAIN, ["age", "plan"], bounds={"age": (18, 90)}, domains={"plan": ["basic", "plus", "premium"]}, sources={})
    labels = ClassLabels("churned", [0, 1])
    spec = ModelSpec.create("logreg", pre.n_features, 2)
    weights = export_weights(spec.build())
    return weights, {"model": spec.to_metadata(), "preprocessor": pre.to_metadata(), "labels": labels.to_metadata()}


def _register(registry, name: str) -> tuple[int, bytes, dict]:
    weights, meta = _model_bytes()
    metadata = registry_pb2.ModelVersionMetadata(
        model_name=name, architecture="logreg", preprocessing_json=json.dumps(meta), trained_on_personal_data=False,
        inputs=[types_pb2.TensorSpec(name="age", datatype="FP64", shape=[-1]), types_pb2.TensorSpec(name="plan", datatype="BYTES", shape=[-1])],
        outputs=[types_pb2.TensorSpec(name="probabilities", datatype="FP32", shape=[-1, 2])],
    )
    v = registry.CreateModelVersion(iter([registry_pb2.CreateModelVersionRequest(metadata=metadata), registry_pb2.CreateModelVersionRequest(chunk=weights)]))
    return v.version, weights, meta


def release_toy(home, registry_address: str, name: str = "churn") -> tuple[int, bytes, dict]:
    """Register the toy model as admin and release it over gRPC (admin declares it not
    personal: uploaded weights are claimed, presumed personal; dana approves, bob publishes)."""
    with channel(home, "admin", registry_address) as a, channel(home, "dana", registry_address) as d, channel(home, "bob", registry_address) as b:
        admin, dana, bob = (registry_pb2_grpc.RegistryServiceStub(c) for c in (a, d, b))
        version, weights, meta = _register(admin, name)
        ref = {"name": name, "version": version}
        admin.DeclarePersonalData(registry_pb2.DeclareVersionPersonalDataRequest(**ref, personal=False, reason="public toy table"))
        admin.RequestRelease(registry_pb2.RequestReleaseRequest(**ref))
        dana.ApproveRelease(registry_pb2.ApproveReleaseRequest(**ref))
        bob.ReleaseModelVersion(registry_pb2.ReleaseModelVersionRequest(**ref))
    return version, weights, meta


@pytest.fixture
def env(servers, sqlite_runtime: Runtime):
    home = sqlite_runtime.home
    version, weights, meta = release_toy(home, servers["registry"])
    chans = {who: channel(home, who, servers["registry"]) for who in ("admin", "dana", "bob")}
    reg = {who: registry_pb2_grpc.RegistryServiceStub(ch) for who, ch in chans.items()}
    yield {"home": home, "servers": servers, "registry": reg, "version": version, "weights": weights, "meta": meta, "runtime": sqlite_runtime}
    for ch in chans.values():
        ch.close()


def _triton(env, principal: str, purpose: str, inputs: dict, version: str = "") -> dict:
    out = subprocess.run([sys.executable, str(CLIENT), str(env["home"].root), principal, env["servers"]["inference"], "churn", version, purpose, json.dumps(inputs)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _infer(env, principal: str, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
    with channel(env["home"], principal, env["servers"]["inference"]) as ch:
        return pb_grpc.GRPCInferenceServiceStub(ch).ModelInfer(request, timeout=30)


def _request(purpose: str = "demo", age=(30.0, 61.0), plan=("basic", "premium"), version: str = "") -> pb.ModelInferRequest:
    r = pb.ModelInferRequest(model_name="churn", model_version=version)
    r.parameters["purpose"].string_param = purpose
    a = r.inputs.add(name="age", datatype="FP64", shape=[len(age)])
    a.contents.fp64_contents.extend(age)
    p = r.inputs.add(name="plan", datatype="BYTES", shape=[len(plan)])
    p.contents.bytes_contents.extend(v.encode() for v in plan)
    return r


def test_tritonclient_round_trip_matches_the_model(env) -> None:
    inputs = {"age": [30.0, 61.0, 44.0], "plan": ["basic", "premium", "plus"]}
    out = _triton(env, "app", "demo", inputs)
    assert out.get("live") and out.get("ready"), out
    assert out["metadata"]["inputs"] == ["age", "plan"] and out["metadata"]["versions"] == [str(env["version"])]
    meta = env["meta"]
    model = load_model("logreg", meta["model"], env["weights"])
    x = TabularPreprocessor.from_metadata(meta["preprocessor"]).transform(pa.table({"age": inputs["age"], "plan": inputs["plan"]}))
    expected = torch.softmax(model(x), dim=-1).detach().numpy()
    np.testing.assert_allclose(np.array(out["outputs"]), expected, rtol=1e-6)


def test_denied_principal_and_purpose_carry_policy_ids(env) -> None:
    assert _triton(env, "app", "marketing", {"age": [30.0], "plan": ["basic"]})["error"] == "StatusCode.PERMISSION_DENIED"
    with pytest.raises(grpc.RpcError) as err:
        _infer(env, "app", _request(purpose="marketing"))
    # The denial says what would be allowed: the purposes the policy approves.
    assert "'marketing' is not an approved purpose; the approved ones are churn-prediction" in err.value.details()
    assert "'marketing' is not an approved purpose" in error_info(err.value)["reasons"]
    with pytest.raises(grpc.RpcError) as err:
        _infer(env, "app", _request(purpose=""))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and error_info(err.value)["policy_ids"] == "inference-purpose-required"
    with pytest.raises(grpc.RpcError) as err:
        _infer(env, "alice", _request())
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and error_info(err.value)["policy_ids"] == "default-deny"


@pytest.mark.parametrize(
    "mutate,field",
    [
        (lambda r: r.inputs[0].ClearField("shape") or r.inputs[0].shape.extend([2, 2]), "inputs.age"),
        (lambda r: setattr(r.inputs[1], "datatype", "FP32"), "inputs.plan"),
        (lambda r: r.inputs.add(name="extra", datatype="FP64", shape=[2]), "inputs.extra"),
        (lambda r: r.inputs.pop(), "inputs.plan"),
        (lambda r: r.inputs[0].contents.fp64_contents.append(1.0), "inputs.age"),
    ],
    ids=["shape", "datatype", "unknown-input", "missing-input", "count"],
)
def test_bad_tensors_name_the_input(env, mutate, field) -> None:
    request = _request()
    mutate(request)
    with pytest.raises(grpc.RpcError) as err:
        _infer(env, "app", request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(err.value) == [field]


def test_unreleased_versions_are_refused(env) -> None:
    version, _, _ = _register(env["registry"]["admin"], "churn")
    with pytest.raises(grpc.RpcError) as err:
        _infer(env, "app", _request(version=str(version)))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_revoked_version_stops_serving_within_seconds(env) -> None:
    assert _infer(env, "app", _request()).outputs[0].shape == [2, 2]
    env["registry"]["bob"].RevokeModelVersion(registry_pb2.RevokeModelVersionRequest(name="churn", version=env["version"], reason="test"))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            _infer(env, "app", _request(version=str(env["version"])))
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
            return
        time.sleep(0.2)
    raise AssertionError("a revoked version still serves after 5 s")


def _denied(env, request) -> bool:
    """Whether `user/app` is now refused `request` (PERMISSION_DENIED; any other failure raises)."""
    try:
        _infer(env, "app", request)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.PERMISSION_DENIED
        return True
    return False


def test_policy_reload_without_restart(env) -> None:
    _infer(env, "app", _request(purpose="demo"))
    policy = env["home"].policies / "inference.cedar"
    policy.write_text(policy.read_text().replace('"demo"]', '"demo-retired"]'))
    eventually(lambda: _denied(env, _request(purpose="demo")), 10, "the new policy picked up")
    (env["home"].policies / "broken.cedar").write_text('@id("broken")\npermit (principal, action, resource) when { nonsense };\n')
    eventually(lambda: env["runtime"].policies.failing, 10, "the watcher tried, and refused, the broken set")
    with pytest.raises(grpc.RpcError) as err:  # the refused set did not replace the live one
        _infer(env, "app", _request(purpose="demo"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.privet_toml("[inference]\nrequests_per_minute = 3\n")
def test_quota_exhausted(env) -> None:
    for _ in range(3):
        _infer(env, "app", _request())
    with pytest.raises(grpc.RpcError) as err:
        _infer(env, "app", _request())
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "3 requests a minute" in err.value.details()
    _infer(env, "admin", _request())  # quotas are per principal


def test_requests_are_counted_in_the_audit_log_without_payloads(env) -> None:
    for _ in range(5):
        _infer(env, "app", _request())
    with pytest.raises(grpc.RpcError):
        _infer(env, "app", _request(purpose="marketing"))
    rt: Runtime = env["runtime"]
    deadline = time.monotonic() + 5
    counted = 0
    while time.monotonic() < deadline and counted < 5:
        with rt.read() as s:
            rows = s.execute(select(AuditEvent).where(AuditEvent.action == "inference.ModelInfer")).scalars().all()
        counted = sum(json.loads(r.details)["requests"] for r in rows if r.decision == "allow")
        time.sleep(0.2)
    assert counted == 5
    assert any(r.decision == "deny" and "inference-approved-purpose" in r.policy_ids for r in rows)
    assert all("61.0" not in r.details and "premium" not in r.details for r in rows)


def test_weights_are_never_on_disk_in_plaintext(env) -> None:
    _infer(env, "app", _request())
    needle = env["weights"][-64:-32]
    for path in env["home"].root.rglob("*"):
        if path.is_file():
            assert needle not in path.read_bytes(), path


def test_raw_and_typed_numeric_datatypes(env) -> None:
    import struct

    typed = _infer(env, "app", _request())
    expected = np.frombuffer(typed.raw_output_contents[0], dtype="<f4")
    for datatype, fmt in (("FP32", "<2f"), ("FP64", "<2d"), ("INT64", "<2q")):
        r = _request()
        age = r.inputs[0]
        age.ClearField("contents")
        age.datatype = datatype
        values = (30, 61)
        raw_age = struct.pack(fmt, *values)
        raw_plan = b"".join(struct.pack("<I", len(v)) + v for v in (b"basic", b"premium"))
        r.inputs[1].ClearField("contents")
        r.raw_input_contents.extend([raw_age, raw_plan])
        out = _infer(env, "app", r)
        np.testing.assert_allclose(np.frombuffer(out.raw_output_contents[0], dtype="<f4"), expected, rtol=1e-6)


def test_an_application_asks_for_an_alias(env) -> None:
    # A release manager points production at the version; the application asks for
    # "@production" and follows the alias when it moves (within one poll period).
    v = env["version"]
    env["registry"]["bob"].SetAlias(registry_pb2.SetAliasRequest(name="churn", alias="production", version=v, reason="rollout"))
    out = _infer(env, "app", _request(version="@production"))
    assert out.model_version == str(v)
    for bad in ("@Production", "@", "@prod uction"):
        with pytest.raises(grpc.RpcError) as err:
            _infer(env, "app", _request(version=bad))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        _infer(env, "app", _request(version="@staging"))  # no such alias
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("age", [float("nan"), float("inf"), float("-inf")])
def test_a_number_no_model_was_trained_on_is_refused_naming_the_input(env, age: float) -> None:
    with pytest.raises(grpc.RpcError) as err:
        _infer(env, "app", _request(age=(30.0, age)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(err.value) == ["inputs.age"]

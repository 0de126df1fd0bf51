"""Applications discover models with the stock tritonclient: the repository index and each
model's configuration show a caller only the released versions its policy lets it call for
the purpose it declares (the `purpose` header), with their inputs and outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from tests.helpers import channel
from tests.integration.test_inference import _register, release_toy

# Run in a process of its own: tritonclient's protos and Privet's share the package `inference`.
CLIENT = r'''
import json, pathlib, sys
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

home, principal, address, calls = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
pki = pathlib.Path(home) / "pki"
client = triton.InferenceServerClient(url=address, ssl=True, root_certificates=str(pki / "ca.pem"),
                                      private_key=str(pki / f"{principal}.key"), certificate_chain=str(pki / f"{principal}.pem"))
out = []
for call, args, headers in calls:
    try:
        if call == "index":
            out.append(client.get_model_repository_index(headers=headers, as_json=True).get("models", []))
        else:
            out.append(client.get_model_config(*args, headers=headers, as_json=True)["config"])
    except InferenceServerException as exc:
        out.append({"error": exc.status(), "details": exc.message()})
print(json.dumps(out))
'''


def _triton(home, principal: str, address: str, *calls: tuple) -> list:
    out = subprocess.run([sys.executable, "-c", CLIENT, str(home.root), principal, address, json.dumps(calls)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def env(servers, sqlite_runtime):
    home = sqlite_runtime.home
    version, _, _ = release_toy(home, servers["registry"], "churn")
    with channel(home, "admin", servers["registry"]) as ch:
        _register(registry_pb2_grpc.RegistryServiceStub(ch), "draft")  # registered, never released
    return home, servers["inference"], version


def test_the_index_lists_what_the_caller_may_call(env, sqlite_runtime) -> None:
    home, address, version = env
    demo, marketing, none = _triton(home, "app", address, ("index", [], {"purpose": "demo"}), ("index", [], {"purpose": "marketing"}), ("index", [], {}))
    assert demo == [{"name": "churn", "version": str(version), "state": "READY"}]  # not "draft": never released
    assert marketing == [] and none == []  # a purpose the policy refuses, or none at all
    # The per-model decision: a policy that keeps app off churn takes churn out of its index.
    fraud, _, _ = release_toy(home, env_registry(home), "fraud")
    (home.policies / "local.cedar").write_text('@id("no-churn-for-app")\nforbid (principal == Privet::User::"app", action == Privet::Action::"inference.Predict", resource)\n'
                                               'when { resource.name == "churn" };\n')
    assert sqlite_runtime.policies.reload_if_changed()
    assert _triton(home, "app", address, ("index", [], {"purpose": "demo"})) == [[{"name": "fraud", "version": str(fraud), "state": "READY"}]]
    # alice may not call the inference API at all.
    assert _triton(home, "alice", address, ("index", [], {"purpose": "demo"}))[0]["error"] == "StatusCode.PERMISSION_DENIED"


def test_the_config_gives_inputs_and_outputs_to_whoever_may_call(env) -> None:
    home, address, version = env
    config, pinned, denied, unknown = _triton(home, "app", address, ("config", ["churn"], {"purpose": "demo"}), ("config", ["churn", str(version)], {"purpose": "demo"}),
                                              ("config", ["churn"], {}), ("config", ["nope"], {"purpose": "demo"}))
    assert config == pinned
    assert config["name"] == "churn" and config["platform"] == "privet_pytorch"
    assert config["input"] == [{"name": "age", "data_type": "TYPE_FP64", "dims": ["-1"]}, {"name": "plan", "data_type": "TYPE_STRING", "dims": ["-1"]}]
    assert config["output"] == [{"name": "probabilities", "data_type": "TYPE_FP32", "dims": ["-1", "2"]}]
    assert denied["error"] == "StatusCode.PERMISSION_DENIED" and "inference-purpose-required" in denied["details"]
    assert unknown["error"] == "StatusCode.NOT_FOUND"
    released, pinned_draft = _triton(home, "app", address, ("config", ["draft"], {"purpose": "demo"}), ("config", ["draft", "1"], {"purpose": "demo"}))
    assert released["error"] == "StatusCode.NOT_FOUND" and pinned_draft["error"] == "StatusCode.FAILED_PRECONDITION"  # never released


def test_a_revoked_version_leaves_the_index(env) -> None:
    home, address, version = env
    assert _triton(home, "app", address, ("index", [], {"purpose": "demo"}))[0]
    with channel(home, "bob", env_registry(home)) as ch:
        registry_pb2_grpc.RegistryServiceStub(ch).RevokeModelVersion(registry_pb2.RevokeModelVersionRequest(name="churn", version=version, reason="test"))
    assert _triton(home, "app", address, ("index", [], {"purpose": "demo"})) == [[]]


def env_registry(home) -> str:
    return home.settings().addresses["registry"]

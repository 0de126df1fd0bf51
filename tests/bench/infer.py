"""Governed inference beside an ungoverned baseline, in the same run.

    python -m tests.bench.infer --json [--seconds 5] [--rounds 3] [--callers 16]

Governed: `privet serve all` (mTLS, per-request Cedar decision, quota, batched audit counts,
dynamic batching). Baseline: the same mlp weights behind a plain gRPC KServe v2 server with no
TLS, no policy and no audit. Both driven by 16 concurrent stock tritonclient callers (one
client each). Also the Cedar decision's own latency on the live policy set.
"""

from __future__ import annotations

import privet  # noqa: F401 - before grpc: pins TLS 1.3 (see privet/__init__.py)

# isort: split

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from privet.governance.architectures.models import ModelSpec, export_weights
from privet.governance.architectures.tabular import ClassLabels, TabularPreprocessor
from privet.governance.policy.engine import PolicyEngine
from tests.conftest import make_home, use_any_ports

FEATURES = {"age": [30.0], "tenure_months": [12.0], "monthly_spend": [80.0], "plan": ["basic"], "support_calls": [2.0]}


def _model() -> tuple[bytes, dict]:
    import pyarrow as pa
    import torch

    torch.manual_seed(0)
    train = pa.table({"age": [23.0, 45.0, 60.0], "tenure_months": [1.0, 50.0, 90.0], "monthly_spend": [20.0, 90.0, 200.0], "plan": ["basic", "plus", "premium"], "support_calls": [0.0, 3.0, 9.0], "churned": [1, 0, 1]})
    pre = TabularPreprocessor.build(
        train, list(FEATURES),
        bounds={"age": (18, 90), "tenure_months": (0, 120), "monthly_spend": (0, 300), "support_calls": (0, 20)},
        domains={"plan": ["basic", "plus", "premium"]}, sources={},
    )
    spec = ModelSpec.create("mlp", pre.n_features, 2)
    signature = [{"name": n, "datatype": "BYTES" if n == "plan" else "FP64", "shape": [-1]} for n in FEATURES]
    return export_weights(spec.build()), {"model": spec.to_metadata(), "preprocessor": pre.to_metadata(), "labels": ClassLabels("churned", [0, 1]).to_metadata(), "signature": signature}


def _register_and_release(home, weights: bytes, meta: dict) -> None:
    from privet.common.v1 import types_pb2
    from privet.registry.v1 import registry_pb2, registry_pb2_grpc
    from privet.services.common.client import secure_channel

    address = home.settings().addresses["registry"]
    md = registry_pb2.ModelVersionMetadata(
        model_name="bench", architecture="mlp", preprocessing_json=json.dumps(meta),
        inputs=[types_pb2.TensorSpec(name=s["name"], datatype=s["datatype"], shape=[-1]) for s in meta["signature"]],
        outputs=[types_pb2.TensorSpec(name="probabilities", datatype="FP32", shape=[-1, 2])],
    )
    with secure_channel(home, "admin", address) as ch:
        v = registry_pb2_grpc.RegistryServiceStub(ch).CreateModelVersion(iter([registry_pb2.CreateModelVersionRequest(metadata=md), registry_pb2.CreateModelVersionRequest(chunk=weights)]))
        # Uploaded weights are presumed trained on personal data: an operator declares these not.
        registry_pb2_grpc.RegistryServiceStub(ch).DeclarePersonalData(registry_pb2.DeclareVersionPersonalDataRequest(
            name="bench", version=v.version, personal=False, reason="benchmark weights, generated"))
        registry_pb2_grpc.RegistryServiceStub(ch).RequestRelease(registry_pb2.RequestReleaseRequest(name="bench", version=v.version))
    for who, call in (("dana", "ApproveRelease"), ("bob", "ReleaseModelVersion")):
        with secure_channel(home, who, address) as ch:
            stub = registry_pb2_grpc.RegistryServiceStub(ch)
            req = registry_pb2.ApproveReleaseRequest if call == "ApproveRelease" else registry_pb2.ReleaseModelVersionRequest
            getattr(stub, call)(req(name="bench", version=v.version))


def _drive(make_client, seconds: float, callers: int, purpose: str | None) -> dict:
    import tritonclient.grpc as triton

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def caller() -> None:
        client = make_client()
        tensors = []
        for name, values in FEATURES.items():
            t = triton.InferInput(name, [1], "BYTES" if name == "plan" else "FP64")
            t.set_data_from_numpy(np.array(values, dtype=object if name == "plan" else np.float64))
            tensors.append(t)
        mine = []
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            try:
                client.infer("bench", tensors, parameters={"purpose": purpose} if purpose else None)
                mine.append(time.perf_counter() - start)
            except Exception:
                with lock:
                    errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    begin = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - begin
    latencies.sort()
    return {"requests_per_s": round(len(latencies) / elapsed, 1), "p50_ms": round(statistics.median(latencies) * 1e3, 2), "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1e3, 2), "errors": errors[0]}


def _cedar_p99(policies: pathlib.Path) -> dict:
    engine = PolicyEngine.load(policies)
    app = engine.directory.principals["user/app"]
    entity = [{"uid": {"type": "Privet::ServedModel", "id": "bench:1"}, "attrs": {"name": "bench", "version": 1, "stage": "RELEASED", "epsilon_milli": 3000, "owner": "user/alice"}, "parents": []}]
    handle = engine.with_entities(entity)  # as the servicer does: parsed once per model
    times = []
    for _ in range(5000):
        start = time.perf_counter()
        engine.decide(app, "inference.Predict", ("ServedModel", "bench:1"), {"purpose": "demo", "quota_used": 1, "quota_limit": 100}, entities=handle)
        times.append(time.perf_counter() - start)
    times.sort()
    return {"p50_us": round(times[len(times) // 2] * 1e6, 1), "p99_us": round(times[int(len(times) * 0.99)] * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5, help="per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--max-delay-ms", type=float, default=None, help="override [inference] max_queue_delay_ms")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import tritonclient.grpc as triton

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="privet-bench-infer-"))
    home = make_home(tmp / "home")
    delay = f"max_queue_delay_ms = {args.max_delay_ms}\n" if args.max_delay_ms is not None else ""
    home.config_path.write_text(home.config_path.read_text() + f"\n[inference]\nrequests_per_minute = 100000000\n{delay}")
    use_any_ports(home)
    weights, meta = _model()
    (tmp / "w.safetensors").write_bytes(weights)
    (tmp / "meta.json").write_text(json.dumps(meta))
    serve = subprocess.Popen([sys.executable, "-m", "privet.services.cli", "--home", str(home.root), "serve", "all"], stdout=open(tmp / "serve.log", "w"), stderr=subprocess.STDOUT)
    plain = subprocess.Popen([sys.executable, "-m", "tests.bench.plain_infer_server", "0", str(tmp / "w.safetensors"), str(tmp / "meta.json")], stdout=subprocess.PIPE, text=True)
    try:
        from privet.services.common.health import wait_healthy

        wait_healthy(home, "admin", timeout=60)
        plain_port = int(plain.stdout.readline().split()[1])  # "ready <port it bound>"
        _register_and_release(home, weights, meta)
        pki = home.pki
        governed_client = lambda: triton.InferenceServerClient(url=home.settings().addresses["inference"], ssl=True, root_certificates=str(pki / "ca.pem"), private_key=str(pki / "app.key"), certificate_chain=str(pki / "app.pem"))
        plain_client = lambda: triton.InferenceServerClient(url=f"127.0.0.1:{plain_port}")
        _drive(governed_client, 1, 2, "demo")  # warm up: load the model
        _drive(plain_client, 1, 2, None)
        results: dict = {"callers": args.callers, "seconds_per_round": args.seconds, "rounds": args.rounds}
        rounds: dict[str, list[dict]] = {"ungoverned": [], "governed": []}
        for _ in range(args.rounds):  # alternate, so drifting load on a shared host hits both sides alike
            rounds["ungoverned"].append(_drive(plain_client, args.seconds, args.callers, None))
            rounds["governed"].append(_drive(governed_client, args.seconds, args.callers, "demo"))
        for side, runs in rounds.items():
            median = sorted(runs, key=lambda r: r["requests_per_s"])[len(runs) // 2]
            results[side] = median | {"requests_per_s_each_round": [r["requests_per_s"] for r in runs]}
        results["governed_over_ungoverned"] = round(results["governed"]["requests_per_s"] / results["ungoverned"]["requests_per_s"], 3)
        results["cedar_decision"] = _cedar_p99(home.policies)
    finally:
        serve.terminate()
        plain.terminate()
        serve.wait(30)
        plain.wait(30)
    print(json.dumps(results, indent=2) if args.json else results)


if __name__ == "__main__":
    main()

"""Soak: drive all four services at once from many clients on loopback, then check that the
ledger, the audit log and the registry agree.

    python -m tests.bench.soak --minutes 5

Clients: ingesters (small Faker tables), trainers (small DP jobs), inference callers (stock
tritonclient on a released model), auditors (ListEvents, proofs). Prints throughput and error
counts per kind; exits non-zero if any consistency check fails.
"""

from __future__ import annotations

import privet  # noqa: F401 - before grpc: pins TLS 1.3 (see privet/__init__.py)

# isort: split

import argparse
import collections
import json
import pathlib
import tempfile
import threading
import time

import grpc
from sqlalchemy import select

from privet.audit.v1 import audit_pb2, audit_pb2_grpc
from privet.governance.datasets.synthetic import customer_table
from privet.governance.privacy.ledger import BudgetLedger
from privet.governance.runtime import Runtime
from privet.governance.store.dataset_tables import Dataset
from privet.governance.store.training_tables import TrainingJob
from privet.ingestion.v1 import ingestion_pb2_grpc
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from privet.training.v1 import training_pb2, training_pb2_grpc
from tests.conftest import make_home, use_any_ports
from tests.helpers import ServeProcess, channel
from tests.integration.test_ingestion import _csv_bytes, _header, _requests

FEATURES = ["age", "tenure_months", "monthly_spend", "plan", "support_calls"]


class Counters:
    def __init__(self) -> None:
        self.ok: collections.Counter = collections.Counter()
        self.errors: collections.Counter = collections.Counter()
        self.lock = threading.Lock()

    def add(self, kind: str, ok: bool, code: str = "") -> None:
        with self.lock:
            (self.ok if ok else self.errors)[kind if ok else f"{kind}:{code}"] += 1


def _loop(stop: threading.Event, kind: str, counters: Counters, fn) -> None:
    while not stop.is_set():
        try:
            fn()
            counters.add(kind, True)
        except grpc.RpcError as exc:
            counters.add(kind, False, exc.code().name)
        except Exception as exc:
            counters.add(kind, False, type(exc).__name__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--callers", type=int, default=8, help="inference callers")
    args = parser.parse_args()
    import tritonclient.grpc as triton

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="privet-soak-"))
    home = make_home(tmp / "home")
    home.config_path.write_text(home.config_path.read_text() + "\n[inference]\nrequests_per_minute = 100000000\n")
    use_any_ports(home)
    server = ServeProcess(home, tmp / "serve.log").start()
    addr = home.settings().addresses
    counters = Counters()
    stop = threading.Event()
    csv = _csv_bytes(customer_table(1500, seed=1))
    seq = iter(range(10**9))
    try:
        # A released model for the inference callers, trained through the real path.
        with channel(home, "alice", addr["ingestion"]) as ch:
            ingestion_pb2_grpc.IngestionServiceStub(ch).CreateDataset(_requests(_header("soak-base", k=1, quasi_identifiers=[], epsilon_budget=500), csv))
        with channel(home, "alice", addr["training"]) as ch:
            t = training_pb2_grpc.TrainingServiceStub(ch)
            job = t.SubmitJob(training_pb2.SubmitJobRequest(dataset="soak-base", target="churned", features=FEATURES, epochs=1, batch_size=128, learning_rate=0.01, target_epsilon=3, delta=1e-5, device="cpu", model_name="soak"))
            final = list(t.WatchJob(training_pb2.WatchJobRequest(job_id=job.id)))[-1]
            job = t.GetJob(training_pb2.GetJobRequest(job_id=job.id))
        assert final.state == training_pb2.JOB_STATE_SUCCEEDED, final.reason
        ref = dict(name="soak", version=job.model_version)
        for who, call, req in (("alice", "RequestRelease", registry_pb2.RequestReleaseRequest), ("dana", "ApproveRelease", registry_pb2.ApproveReleaseRequest), ("bob", "ReleaseModelVersion", registry_pb2.ReleaseModelVersionRequest)):
            with channel(home, who, addr["registry"]) as ch:
                getattr(registry_pb2_grpc.RegistryServiceStub(ch), call)(req(**ref))

        def ingester() -> None:
            with channel(home, "alice", addr["ingestion"]) as ch:
                stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
                _loop(stop, "ingest", counters, lambda: stub.CreateDataset(_requests(_header(f"soak-{next(seq)}", k=1, quasi_identifiers=[], epsilon_budget=5), csv), timeout=120))

        def trainer() -> None:
            with channel(home, "alice", addr["training"]) as ch:
                stub = training_pb2_grpc.TrainingServiceStub(ch)
                _loop(stop, "train-submit", counters, lambda: (stub.SubmitJob(training_pb2.SubmitJobRequest(dataset="soak-base", target="churned", features=FEATURES, epochs=1, batch_size=128, learning_rate=0.01, target_epsilon=1, delta=1e-5, device="cpu")), time.sleep(2)))

        def caller() -> None:
            client = triton.InferenceServerClient(url=addr["inference"], ssl=True, root_certificates=str(home.ca_cert), private_key=str(home.key("app")), certificate_chain=str(home.cert("app")))
            import numpy as np

            tensors = []
            for name, value in (("age", 40.0), ("tenure_months", 12.0), ("monthly_spend", 90.0), ("plan", "basic"), ("support_calls", 3.0)):
                tensor = triton.InferInput(name, [1], "BYTES" if name == "plan" else "FP64")
                tensor.set_data_from_numpy(np.array([value], dtype=object if name == "plan" else np.float64))
                tensors.append(tensor)
            _loop(stop, "infer", counters, lambda: client.infer("soak", tensors, parameters={"purpose": "churn-prediction"}))

        def auditor() -> None:
            with channel(home, "carol", addr["registry"]) as ch:
                stub = audit_pb2_grpc.AuditServiceStub(ch)

                def read() -> None:
                    stub.ListEvents(audit_pb2.ListEventsRequest(), timeout=30)
                    cp = stub.GetCheckpoint(audit_pb2.GetCheckpointRequest(), timeout=30)
                    stub.GetInclusionProof(audit_pb2.GetInclusionProofRequest(seq=cp.tree_size // 2, tree_size=cp.tree_size), timeout=30)

                _loop(stop, "audit-read", counters, read)

        workers = [threading.Thread(target=f) for f in [ingester, ingester, trainer, auditor, auditor] + [caller] * args.callers]
        started = time.monotonic()
        for w in workers:
            w.start()
        time.sleep(args.minutes * 60)
        stop.set()
        for w in workers:
            w.join()
        elapsed = time.monotonic() - started
        time.sleep(3)  # let queued jobs and audit counts settle
    finally:
        server.stop()
    rt = Runtime.open(home)
    problems = []
    with rt.read() as s:
        jobs = list(s.execute(select(TrainingJob)).scalars())
        datasets = list(s.execute(select(Dataset)).scalars())
        ledger = BudgetLedger(rt.audit)
        for d in datasets:
            b = ledger.budget(s, d.id)
            charged = sum(e.epsilon_micro for e in ledger.history(s, d.id) if e.kind == "charge") / 1e6
            running = sum(j.epsilon_reserved for j in jobs if j.dataset_id == d.id and j.state in ("QUEUED", "RUNNING"))
            if abs(b.epsilon_spent - charged) > 1e-5 or b.epsilon_spent + b.epsilon_reserved > b.epsilon_total + 1e-9 or abs(b.epsilon_reserved - running) > 1e-5:
                problems.append(f"ledger of {d.name}: {b}")
    report = rt.check_audit_log()
    if not report.ok:
        problems.append(report.message)
    succeeded = [j for j in jobs if j.state == "SUCCEEDED"]
    print(json.dumps({
        "minutes": round(elapsed / 60, 2),
        "throughput_per_s": {k: round(v / elapsed, 2) for k, v in counters.ok.items()},
        "ok": dict(counters.ok), "errors": dict(counters.errors),
        "jobs": collections.Counter(j.state for j in jobs), "datasets": len(datasets), "audit_events": report.size,
        "consistent": not problems, "problems": problems, "models_registered_by_jobs": len(succeeded),
    }, indent=2, default=dict))
    rt.close()
    raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()

"""Faults: SIGKILL of the service during its busiest writes, then restart; the database made
unavailable for a while. No acknowledged change is lost, nothing half-written is visible, the
budget ledger stays consistent and the audit log still verifies."""

from __future__ import annotations

import pathlib
import threading
import time

import grpc
import psycopg
import pytest
from sqlalchemy import func, select

from privet.governance.datasets.synthetic import customer_table
from privet.governance.privacy.ledger import BudgetLedger
from privet.governance.runtime import Runtime
from privet.governance.store.dataset_tables import Dataset
from privet.governance.store.training_tables import TrainingJob
from privet.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from privet.registry.v1 import registry_pb2, registry_pb2_grpc
from privet.training.v1 import training_pb2, training_pb2_grpc
from tests.conftest import PG_ADMIN_DSN, make_home, metrics_on_any_port, serve_on_any_ports
from tests.helpers import ServeProcess, channel
from tests.integration.test_ingestion import _csv_bytes, _header, _requests


def _after_restart(server: ServeProcess) -> Runtime:
    """Restart the service, then open the store the way an operator's tool would."""
    server.start()
    rt = Runtime.open(server.home)
    assert rt.audit.tampered is None
    assert rt.check_audit_log().ok
    return rt


def _kill_mid_upload(served: ServeProcess, principal: str, service: str, call, first, payload: bytes, make_chunk, chunk: int, pause: float) -> None:
    """Stream `first` then `payload` in chunks to `call` (a stub method factory), and SIGKILL
    the server once a third of the payload is on its way. The client sees the call fail."""
    started = threading.Event()

    def requests():
        yield first
        for i in range(0, len(payload), chunk):
            if i > len(payload) // 3:
                started.set()
            yield make_chunk(payload[i : i + chunk])
            time.sleep(pause)

    def upload() -> None:
        with channel(served.home, principal, served.home.settings().addresses[service]) as ch:
            with pytest.raises(grpc.RpcError):
                call(ch)(requests(), timeout=60)

    t = threading.Thread(target=upload)
    t.start()
    assert started.wait(30)
    served.kill()
    t.join()


def _tmp_files(home) -> list[str]:
    return sorted(p.name for p in (home.settings().blob_dir / "tmp").iterdir())


def test_sigkill_during_ingestion_leaves_nothing_half_written(served: ServeProcess) -> None:
    _kill_mid_upload(
        served, "alice", "ingestion", lambda ch: ingestion_pb2_grpc.IngestionServiceStub(ch).CreateDataset,
        ingestion_pb2.CreateDatasetRequest(header=_header("killed", k=1, quasi_identifiers=[])),
        _csv_bytes(customer_table(4000, seed=5)) * 6, lambda b: ingestion_pb2.CreateDatasetRequest(chunk=b), 16 * 1024, 0.002,
    )
    rt = _after_restart(served)
    try:
        with rt.read() as s:
            assert s.execute(select(func.count()).select_from(Dataset)).scalar_one() == 0
        assert list(rt.blobs.digests()) == [] and _tmp_files(served.home) == []
    finally:
        rt.close()


def test_sigkill_during_model_upload_leaves_no_version_and_no_blob(served: ServeProcess) -> None:
    import numpy as np
    from safetensors.numpy import save

    weights = save({"w": np.random.default_rng(1).standard_normal((2500, 1000)).astype(np.float32)})  # 10 MB
    _kill_mid_upload(
        served, "admin", "registry", lambda ch: registry_pb2_grpc.RegistryServiceStub(ch).CreateModelVersion,
        registry_pb2.CreateModelVersionRequest(metadata=registry_pb2.ModelVersionMetadata(model_name="killed", architecture="logreg")),
        weights, lambda b: registry_pb2.CreateModelVersionRequest(chunk=b), 64 * 1024, 0.005,
    )
    rt = _after_restart(served)
    try:
        with channel(served.home, "admin", served.home.settings().addresses["registry"]) as ch:
            assert not registry_pb2_grpc.RegistryServiceStub(ch).ListModels(registry_pb2.ListModelsRequest()).models
        assert list(rt.blobs.digests()) == [] and _tmp_files(served.home) == []
    finally:
        rt.close()


def _spawned_children(parent: int) -> list[int]:
    """Processes that `parent` started with multiprocessing's spawn (its training workers)."""
    found = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == parent and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


def test_sigkill_during_training_fails_the_job_and_charges_its_lease(served: ServeProcess) -> None:
    home = served.home
    addresses = home.settings().addresses
    with channel(home, "alice", addresses["ingestion"]) as ch:
        ingestion_pb2_grpc.IngestionServiceStub(ch).CreateDataset(_requests(_header("train-kill", k=1, quasi_identifiers=[]), _csv_bytes(customer_table(1500, seed=9))))
    with channel(home, "alice", addresses["training"]) as ch:
        stub = training_pb2_grpc.TrainingServiceStub(ch)
        job = stub.SubmitJob(training_pb2.SubmitJobRequest(dataset="train-kill", target="churned", features=["age", "tenure_months", "monthly_spend"], arch="mlp", epochs=100, batch_size=64, learning_rate=0.01, target_epsilon=3.0, delta=1e-5, device="cpu"))
        deadline = time.monotonic() + 90
        while stub.GetJob(training_pb2.GetJobRequest(job_id=job.id)).progress.step == 0:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    workers = _spawned_children(served.proc.pid)
    assert workers, "the job's worker process is not running"
    served.kill()
    deadline = time.monotonic() + 15  # orphaned, the worker must notice and end, not wait for a lease for ever
    while any(pathlib.Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if pathlib.Path(f"/proc/{pid}").exists()]
    rt = _after_restart(served)
    try:
        deadline = time.monotonic() + 30
        while True:
            with rt.read() as s:
                row = s.get(TrainingJob, job.id)
            if row.state != "RUNNING" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert row.state == "FAILED" and "restart" in row.reason, (row.state, row.reason)
        with rt.read() as s:
            budget = BudgetLedger(rt.audit).budget(s, row.dataset_id)
        assert budget.epsilon_reserved == 0
        assert 0 < budget.epsilon_spent <= 3.0 and budget.epsilon_spent == pytest.approx(row.epsilon_charged, abs=1e-6)
    finally:
        rt.close()


def test_sigkill_during_releases_keeps_stages_and_log_consistent(served: ServeProcess) -> None:
    home = served.home
    address = home.settings().addresses["registry"]
    versions = []
    with channel(home, "admin", address) as ch:
        stub = registry_pb2_grpc.RegistryServiceStub(ch)
        import numpy as np
        from safetensors.numpy import save

        weights = save({"w": np.ones((4, 2), dtype=np.float32)})
        for _ in range(12):
            v = stub.CreateModelVersion(iter([registry_pb2.CreateModelVersionRequest(metadata=registry_pb2.ModelVersionMetadata(model_name="rel", architecture="logreg")), registry_pb2.CreateModelVersionRequest(chunk=weights)]))
            stub.DeclarePersonalData(registry_pb2.DeclareVersionPersonalDataRequest(name="rel", version=v.version, personal=False, reason="test weights"))
            stub.RequestRelease(registry_pb2.RequestReleaseRequest(name="rel", version=v.version))
            versions.append(v.version)
    acknowledged: dict[int, str] = {}

    def release_all() -> None:
        try:
            with channel(home, "dana", address) as d, channel(home, "bob", address) as b:
                for version in versions:
                    registry_pb2_grpc.RegistryServiceStub(d).ApproveRelease(registry_pb2.ApproveReleaseRequest(name="rel", version=version), timeout=5)
                    acknowledged[version] = "APPROVED"
                    registry_pb2_grpc.RegistryServiceStub(b).ReleaseModelVersion(registry_pb2.ReleaseModelVersionRequest(name="rel", version=version), timeout=5)
                    acknowledged[version] = "RELEASED"
        except grpc.RpcError:
            pass

    t = threading.Thread(target=release_all)
    t.start()
    while len(acknowledged) < 4 and t.is_alive():
        time.sleep(0.005)
    served.kill()
    t.join()
    rt = _after_restart(served)
    rt.close()
    rank = {"CANDIDATE": 2, "APPROVED": 3, "RELEASED": 4}
    with channel(home, "bob", home.settings().addresses["registry"]) as ch:  # restarted: a new port
        stub = registry_pb2_grpc.RegistryServiceStub(ch)
        for version in versions:
            stage = registry_pb2.Stage.Name(stub.GetModelVersion(registry_pb2.GetModelVersionRequest(name="rel", version=version)).stage).removeprefix("STAGE_")
            assert rank[stage] >= rank[acknowledged.get(version, "CANDIDATE")], (version, stage, acknowledged.get(version))


def test_database_unavailable_fails_cleanly_then_recovers(tmp_path: pathlib.Path, pg_url: str) -> None:
    home = make_home(tmp_path / "home", pg_url)
    metrics_on_any_port(home)
    rt = Runtime.open(home)
    servers, addresses = serve_on_any_ports(rt, ["ingestion"])
    db = pg_url.rsplit("/", 1)[1]
    data = _csv_bytes(customer_table(200, seed=1))
    try:
        with channel(home, "alice", addresses["ingestion"]) as ch:
            stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
            stub.CreateDataset(_requests(_header("before", k=1, quasi_identifiers=[]), data))
            with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS false')
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db,))
            try:
                for name in ("during-1", "during-2"):
                    with pytest.raises(grpc.RpcError) as err:
                        stub.CreateDataset(_requests(_header(name, k=1, quasi_identifiers=[]), data), timeout=30)
                    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
                with pytest.raises(grpc.RpcError) as err:
                    stub.GetDataset(ingestion_pb2.GetDatasetRequest(name="before"), timeout=30)
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            finally:
                with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
                    admin.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true')
            deadline = time.monotonic() + 30
            while True:  # the service recovers by itself
                try:
                    stub.CreateDataset(_requests(_header("after", k=1, quasi_identifiers=[]), data), timeout=30)
                    break
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline
                    time.sleep(0.5)
            names = [d.name for d in stub.ListDatasets(ingestion_pb2.ListDatasetsRequest()).datasets]
        assert names == ["after", "before"]
        assert len(list(rt.blobs.digests())) == 2 and _tmp_files(home) == []
        assert rt.check_audit_log().ok
    finally:
        for s in servers:
            s.stop(0)
        rt.close()

"""The training scheduler: claims queued jobs, runs each in a worker process, ends it.

Lives in the training service process. Data comes from the ingestion service and models go
to the registry over gRPC, as the training service's own identity.
"""

from __future__ import annotations

import json
import logging
import math
import pathlib
import queue
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from safetensors.torch import save_file

from governance.catalog import input_kind
from governance.catalog.tabular import ClassLabels, TabularPreprocessor
from governance.catalog.text import TextPreprocessor
from governance.errors import PrivetError
from governance.privacy.accounting import Mechanism, accountant_names, noise_multiplier_for
from governance.processes import process_identity
from governance.runtime import Runtime
from governance.store.training_tables import TrainingJob
from governance.training.jobs import claim_next_job, finish_job, planned_steps, recover_orphans, record_progress
from services.training.registration import fetch_dataset, register_model
from services.training.worker import WorkerHandles, run_worker, spawn_context

__all__ = ["Scheduler", "PreparedData", "prepare_data", "planned_mechanism", "next_lease"]

log = logging.getLogger("privet.training")
VALID_SHARE = 0.2


@dataclass
class PreparedData:
    tensors: dict[str, torch.Tensor]
    preprocessor: TabularPreprocessor | TextPreprocessor
    labels: ClassLabels
    n_train: int


def prepare_data(table: pa.Table, spec: dict) -> PreparedData:
    """Seeded 80/20 split; preprocessing fitted on the training split only. Text
    architectures (`input_kind` "tokens") take one string column, tokenized."""
    rng = np.random.default_rng(spec["seed"])
    order = rng.permutation(table.num_rows)
    n_valid = max(1, int(table.num_rows * VALID_SHARE))
    valid, train = table.take(order[:n_valid]), table.take(order[n_valid:])
    pre: TabularPreprocessor | TextPreprocessor
    if input_kind(spec["arch"]) == "tokens":
        pre = TextPreprocessor.fit(train, spec["features"])
    else:
        pre = TabularPreprocessor.fit(train, spec["features"])
    labels = ClassLabels.fit(table, spec["target"])
    tensors = {"x_train": pre.transform(train), "y_train": labels.encode(train), "x_valid": pre.transform(valid), "y_valid": labels.encode(valid)}
    return PreparedData({k: v.contiguous() for k, v in tensors.items()}, pre, labels, train.num_rows)


def planned_mechanism(spec: dict, n_train: int) -> tuple[float, float]:
    """(σ, q) exactly as the worker will calibrate them (Opacus's Poisson sampler runs
    1/q steps an epoch; σ is the largest any accountant needs), for charging a worker
    that dies before it reports its own guarantee."""
    q = 1 / math.ceil(n_train / spec["batch_size"])
    steps = planned_steps(spec["epochs"], q)
    sigma = max(noise_multiplier_for(target_epsilon=spec["target_epsilon"], delta=spec["delta"], sample_rate=q, steps=steps, accountant=a) for a in accountant_names())
    return sigma, q


def next_lease(allowed: int, taken: int, lease: int, horizon: int) -> int:
    """The steps to allow the worker: `lease` beyond those taken once half the current lease
    is used, but never past `horizon` (the planned steps, whose ε is the reservation)."""
    if allowed < horizon and allowed - taken < lease // 2:
        return min(taken + lease, horizon)
    return allowed


class Scheduler:
    def __init__(self, runtime: Runtime, *, poll_s: float = 0.5, lease_steps: int = 25) -> None:
        self._rt = runtime
        self._poll_s = poll_s
        self._lease = lease_steps
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.worker_id = f"{socket.gethostname()}:{process_identity()}"
        self.current: Any = None  # the running worker process, for tests that kill it

    def start(self) -> None:
        for job in recover_orphans(self._rt):
            log.warning("job %s was interrupted by a restart: FAILED, charged ε %.4f", job.id, job.epsilon_charged)
        self._thread = threading.Thread(target=self._loop, name="privet-scheduler", daemon=True)
        self._thread.start()

    def stop(self, grace_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=grace_s + 30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job = claim_next_job(self._rt, self.worker_id)
            except PrivetError:
                log.exception("cannot claim a job")
                job = None
            if job is None:
                self._stop.wait(self._poll_s)
                continue
            try:
                self._run(job)
            except Exception:  # noqa: BLE001 - a job's failure must never stop the scheduler
                log.exception("job %s failed in the scheduler", job.id)
                self._finish_quietly(job.id, "FAILED", "internal error in the scheduler", None)

    def _finish_quietly(self, job_id: str, state: str, reason: str, mechanism: Mechanism | None, **kw: Any) -> None:
        try:
            finish_job(self._rt, job_id, state, reason, mechanism, **kw)
        except PrivetError:
            log.exception("could not end job %s", job_id)

    def _run(self, job: TrainingJob) -> None:
        spec = json.loads(job.spec_json)
        try:
            table = fetch_dataset(self._rt.home, job.dataset_name, [*spec["features"], spec["target"]])
            data = prepare_data(table, spec)
            sigma, q = planned_mechanism(spec, data.n_train)
        except PrivetError as exc:
            finish_job(self._rt, job.id, "FAILED", f"refused before training: {exc.message}", None)
            return
        workdir = pathlib.Path(tempfile.mkdtemp(prefix=f"privet-job-{job.id[:8]}-"))
        try:
            save_file(data.tensors, str(workdir / "data.safetensors"))
            self._supervise(job, spec, data, sigma, q, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _supervise(self, job: TrainingJob, spec: dict, data: PreparedData, sigma: float, q: float, workdir: pathlib.Path) -> None:
        ctx = spawn_context()
        handles = WorkerHandles(ctx)
        config = {
            "arch": spec["arch"], "epochs": spec["epochs"], "batch_size": spec["batch_size"], "learning_rate": spec["learning_rate"],
            "target_epsilon": spec["target_epsilon"], "delta": spec["delta"], "max_grad_norm": spec["max_grad_norm"], "hparams": spec.get("hparams") or {},
            "n_classes": len(data.labels.classes), "accountant": spec["accountant"], "device": spec["device"], "seed": spec["seed"],
            "max_physical_batch_size": spec["max_physical_batch_size"], "progress_interval_s": 0.5,
        }
        proc = ctx.Process(target=run_worker, args=(config, str(workdir / "data.safetensors"), str(workdir), handles), daemon=True)
        proc.start()
        self.current = proc
        progress: dict = {}
        allowed, horizon = 0, planned_steps(spec["epochs"], q)
        while True:
            # Persist the lease before granting it: a restart then charges at most `allowed` steps.
            lease = next_lease(allowed, handles.taken.value, self._lease, horizon)
            if lease > allowed:
                allowed = lease
                cancel = record_progress(self._rt, job.id, progress, steps_allowed=allowed, noise_multiplier=sigma, sample_rate=q)
                handles.allowed.value = allowed
            else:
                cancel = record_progress(self._rt, job.id, progress, steps_allowed=allowed, noise_multiplier=sigma, sample_rate=q) if progress else False
            if cancel or self._stop.is_set():
                handles.cancel.set()
            try:
                progress = handles.progress.get(timeout=0.2)
                while True:
                    progress = handles.progress.get_nowait()
            except queue.Empty:
                pass
            if not proc.is_alive():
                break
        proc.join()
        self.current = None
        self._conclude(job, spec, data, sigma, q, workdir, handles, proc.exitcode)

    def _conclude(self, job: TrainingJob, spec: dict, data: PreparedData, sigma: float, q: float, workdir: pathlib.Path, handles: WorkerHandles, exitcode: int | None) -> None:
        result_path = workdir / "result.json"
        if not result_path.exists():
            # The worker died (SIGKILL, OOM): charge every step it may have taken.
            taken = handles.taken.value
            mechanism = Mechanism(sigma, q, taken, spec["delta"]) if taken else None
            self._finish_quietly(job.id, "FAILED", f"worker died (exit code {exitcode}) after at most {taken} noisy steps", mechanism, within_reservation=True)
            return
        result = json.loads(result_path.read_text())
        g = result.get("guarantee")
        mechanism = Mechanism(g["noise_multiplier"], g["sample_rate"], g["steps"], g["delta"]) if g and g["steps"] else None
        if not result["ok"]:
            if g is None and handles.taken.value:
                mechanism = Mechanism(sigma, q, handles.taken.value, spec["delta"])
            self._finish_quietly(job.id, "FAILED", result["error"], mechanism, guarantee=g)
            return
        if result["cancelled"]:
            self._finish_quietly(job.id, "CANCELLED", result["refusal"] or "cancelled", mechanism, guarantee=g, metrics=result["metrics"], device=result["device"])
            return
        if not result["registrable"]:
            self._finish_quietly(job.id, "FAILED", f"model not registered: {result['refusal']}", mechanism, guarantee=g, metrics=result["metrics"], device=result["device"])
            return
        try:
            version = register_model(self._rt.home, job, spec, result, data, (workdir / "weights.safetensors").read_bytes())
        except Exception as exc:  # noqa: BLE001 - the ε was spent all the same
            self._finish_quietly(job.id, "FAILED", f"registration failed: {exc}", mechanism, guarantee=g, metrics=result["metrics"], device=result["device"])
            return
        self._finish_quietly(job.id, "SUCCEEDED", "", mechanism, guarantee=g, metrics=result["metrics"], model=(spec["model_name"], version), device=result["device"])



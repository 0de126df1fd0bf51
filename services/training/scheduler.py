"""The training scheduler: claims queued jobs, runs each in a worker process, ends it.

Lives in the training service process. Data comes from the ingestion service and models go
to the registry over gRPC, as the training service's own identity.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import pathlib
import queue
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from safetensors.torch import save_file

from privet.governance.errors import FailedPrecondition, PrivetError
from privet.governance.privacy.accounting import Mechanism, calibrate_noise_multiplier
from privet.governance.privacy.guarantee import composed_guarantee
from privet.governance.privacy.releases import Release, releases_from_json
from privet.governance.processes import process_identity
from privet.governance.runtime import Runtime
from privet.governance.store.training_tables import TrainingJob
from privet.governance.training.jobs import charge_job, claim_next_job, finish_job, planned_steps, record_progress, record_releases, recover_orphans
from privet.governance.training.preparation import PreparationRefused, PreparedData, prepare_data
from privet.services.common.bases import use_registry_for_bases
from privet.services.training.registration import SERVICE_IDENTITY, fetch_dataset, register_model
from privet.services.training.workdirs import JOB_DIR_PREFIX, sweep_job_dirs
from privet.services.training.worker import WorkerHandles, run_worker, spawn_context

__all__ = ["Scheduler", "next_lease", "planned_mechanism", "planned_progress", "shown_progress", "steps_of_plan"]

log = logging.getLogger("privet.training")


def output_width(spec: dict, labels: Any) -> int:
    """The model's output width: its classes, or a causal language model's vocabulary."""
    if labels is not None:
        return len(labels.classes)
    return int(spec["hparams"]["base"]["config"]["vocab_size"])


def planned_mechanism(*, epsilon: float, delta: float, n_train: int, batch_size: int, epochs: int) -> tuple[float, float]:
    """(σ, q) exactly as the worker will calibrate them for DP-SGD's share (`epsilon`,
    `delta`) of the job (Opacus's Poisson sampler runs 1/q steps an epoch; σ is the largest
    any accountant needs), for charging a worker that dies before it reports its own
    guarantee."""
    q = 1 / -(-n_train // batch_size)
    steps = planned_steps(epochs, q)
    return calibrate_noise_multiplier(target_epsilon=epsilon, delta=delta, sample_rate=q, steps=steps), q


def steps_of_plan(*, epochs: int, sample_rate: float) -> int:
    """The noisy steps the worker will take if nothing stops it: Opacus's Poisson sampler runs
    int(1/q) logical batches an epoch (the progress's total, known before the worker starts)."""
    return int(1 / sample_rate) * epochs


def planned_progress(epochs: int, sample_rate: float, releases: Sequence[Release]) -> dict[str, Any]:
    """The progress of a job about to train: no step yet of the planned total, ε what it has
    already released."""
    return {"epoch": 1, "epochs": epochs, "step": 0, "total_steps": steps_of_plan(epochs=epochs, sample_rate=sample_rate),
            "epsilon": math.fsum(r.epsilon for r in releases), "eta_s": 0.0}


def shown_progress(worker: dict[str, Any], released_epsilon: float) -> dict[str, Any]:
    """The job's progress as stored and watched: the worker's report with ε the job's own
    figure so far — the steps' conservative ε plus the releases already made (row counts,
    scales…) — composed as the stated guarantee composes them, so that the last report is the
    figure the ledger charges and the registry states."""
    return {**worker, "epsilon": math.fsum([float(worker.get("epsilon", 0.0)), released_epsilon])}


def next_lease(allowed: int, taken: int, lease: int, horizon: int) -> int:
    """The steps to allow the worker: `lease` beyond those taken once half the current lease
    is used, but never past `horizon` (the planned steps, whose ε is the reservation)."""
    if allowed < horizon and allowed - taken < lease // 2:
        return min(taken + lease, horizon)
    return allowed


def _whole_reservation(job: TrainingJob) -> tuple[Release, ...]:
    """The charge of a failure that may depend on the data: everything the job reserved,
    an upper bound of anything it could have spent."""
    return (Release("unexpected-failure", "whole-reservation", float(job.epsilon_reserved)),)


@dataclass
class _Spent:
    """An upper bound of what the running job has spent so far, kept current by the
    scheduler so that any way out — a database error included — charges it."""

    releases: list[Release] = field(default_factory=list)
    touched: bool = False  # the job has read the data
    sigma: float = 0.0
    q: float = 0.0
    delta: float = 0.0
    handles: WorkerHandles | None = None

    def mechanism(self) -> Mechanism | None:
        taken = self.handles.taken.value if self.handles is not None else 0
        return Mechanism(self.sigma, self.q, taken, self.delta) if taken and self.sigma else None


class Scheduler:
    def __init__(self, runtime: Runtime, *, poll_s: float = 0.5, lease_steps: int = 25) -> None:
        self._rt = runtime
        self._poll_s = poll_s
        self._lease = lease_steps
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.worker_id = f"{socket.gethostname()}:{process_identity()}"
        self.current: Any = None  # the running worker process, for tests that kill it
        # A fine-tuning job's tokenizer (prepared here) comes from its base in the registry.
        use_registry_for_bases(runtime.home, SERVICE_IDENTITY)

    def start(self) -> None:
        sweep_job_dirs()  # training tensors a killed predecessor left behind
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
            spent = _Spent()
            try:
                self._run(job, spent)
            except Exception:
                log.exception("job %s failed in the scheduler", job.id)
                if spent.touched:
                    # A failure nobody planned for, after the job read the data, may itself
                    # depend on the data (one odd value that crashes a step): charge the
                    # whole reservation, an upper bound of anything the job could spend.
                    self._finish_quietly(job.id, "FAILED", "internal error in the scheduler; charged its whole reservation", None, releases=_whole_reservation(job), within_reservation=True)
                else:
                    self._finish_quietly(job.id, "FAILED", "internal error in the scheduler", None)

    def _finish_quietly(self, job_id: str, state: str, reason: str, mechanism: Mechanism | None, **kw: Any) -> None:
        try:
            finish_job(self._rt, job_id, state, reason, mechanism, **kw)
        except Exception:
            log.exception("could not end job %s", job_id)

    def _run(self, job: TrainingJob, spent: _Spent) -> None:
        spec = json.loads(job.spec_json)
        try:
            columns = [*spec["features"], *([spec["target"]] if spec["target"] else []), *([spec["person_key"]] if spec.get("person_key") else [])]
            table = fetch_dataset(self._rt.home, job.dataset_id, columns)
            spent.touched = True
            data = prepare_data(table, spec)
        except PreparationRefused as exc:
            finish_job(self._rt, job.id, "FAILED", f"refused before training: {exc.message}", None, releases=exc.releases)
            return
        except PrivetError as exc:
            finish_job(self._rt, job.id, "FAILED", f"refused before training: {exc.message}", None)
            return
        spent.releases.extend(data.releases)
        # Durable before anything else can fail: a restart charges these too.
        record_releases(self._rt, job.id, data.releases)
        # The plan is shown at once: calibrating σ and starting the worker take a while.
        q = 1 / max(1, -(-data.public_rows // spec["batch_size"]))  # as the worker (BatchCount) sets it
        record_progress(self._rt, job.id, planned_progress(spec["epochs"], q, data.releases), steps_allowed=0, noise_multiplier=0.0, sample_rate=q)
        try:
            sigma, q = planned_mechanism(
                epsilon=data.plan.sgd_epsilon, delta=data.plan.sgd_delta, n_train=data.public_rows, batch_size=spec["batch_size"], epochs=spec["epochs"]
            )
        except PrivetError as exc:
            finish_job(self._rt, job.id, "FAILED", f"refused before training: {exc.message}", None, releases=data.releases)
            return
        spent.sigma, spent.q, spent.delta = sigma, q, data.plan.sgd_delta
        workdir = pathlib.Path(tempfile.mkdtemp(prefix=f"{JOB_DIR_PREFIX}{process_identity()}-{job.id[:8]}-"))
        try:
            save_file(data.tensors, str(workdir / "data.safetensors"))
            self._supervise(job, spec, data, spent, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _supervise(self, job: TrainingJob, spec: dict, data: PreparedData, spent: _Spent, workdir: pathlib.Path) -> None:
        ctx = spawn_context()
        handles = WorkerHandles(ctx)
        spent.handles = handles
        sigma, q = spent.sigma, spent.q
        config = {
            "arch": spec["arch"], "epochs": spec["epochs"], "batch_size": spec["batch_size"], "learning_rate": spec["learning_rate"],
            "target_epsilon": data.plan.sgd_epsilon, "delta": data.plan.sgd_delta, "max_grad_norm": spec["max_grad_norm"], "hparams": spec.get("hparams") or {},
            "evaluation_epsilon": data.plan.release("evaluation").epsilon,
            "n_classes": output_width(spec, data.labels), "accountant": spec["accountant"], "device": spec["device"], "seed": spec["seed"],
            "max_physical_batch_size": spec["max_physical_batch_size"], "progress_interval_s": 0.5, "public_rows": data.public_rows,
        }
        workers = int(spec.get("workers", 1))
        # A job of several ranks starts them from its worker, which a daemonic process may not do.
        proc = ctx.Process(target=run_worker, args=(config, str(workdir / "data.safetensors"), str(workdir), handles, str(self._rt.home.root), workers),
                           daemon=workers == 1)
        proc.start()
        self.current = proc
        try:
            self._watch(job, spec, handles, proc, sigma, q, data.releases)
        except BaseException:
            # A database error (say) while the worker runs: stop it, so that the steps it
            # took are final before the job is charged for them.
            handles.cancel.set()
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()
            raise
        finally:
            self.current = None
        self._conclude(job, spec, data, spent, workdir, proc.exitcode)

    def _watch(self, job: TrainingJob, spec: dict, handles: WorkerHandles, proc: Any, sigma: float, q: float, releases: Sequence[Release]) -> None:
        # Until the worker's first report (it builds its model first), the plan is shown.
        progress = planned_progress(spec["epochs"], q, releases)
        released = float(progress["epsilon"])
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
            progress = self._latest(handles, progress, released, timeout=0.2)
            if not proc.is_alive():
                break
        proc.join()
        # The worker's last report (its final step, its last epoch) arrives as it exits.
        final = self._latest(handles, progress, released, timeout=0.1)
        if final is not progress:
            record_progress(self._rt, job.id, final, steps_allowed=allowed, noise_multiplier=sigma, sample_rate=q)

    @staticmethod
    def _latest(handles: WorkerHandles, progress: dict, released: float, *, timeout: float) -> dict:
        """The newest report in the queue (waiting up to `timeout` for one), as shown; else `progress`."""
        try:
            progress = shown_progress(handles.progress.get(timeout=timeout), released)
            while True:
                progress = shown_progress(handles.progress.get_nowait(), released)
        except queue.Empty:
            pass
        return progress

    def _conclude(self, job: TrainingJob, spec: dict, data: PreparedData, spent: _Spent, workdir: pathlib.Path, exitcode: int | None) -> None:
        result_path = workdir / "result.json"
        releases = tuple(spent.releases)
        if not result_path.exists():
            # The worker died (SIGKILL, OOM): charge every step it may have taken.
            mechanism = spent.mechanism()
            taken = mechanism.steps if mechanism else 0
            self._end(job, "FAILED", f"worker died (exit code {exitcode}) after at most {taken} noisy steps", mechanism, releases=releases)
            return
        result = json.loads(result_path.read_text())
        g = result.get("guarantee")
        mechanism = Mechanism(g["noise_multiplier"], g["sample_rate"], g["steps"], g["delta"]) if g and g["steps"] else None
        if not result["ok"]:
            if result.get("data_dependent", True):
                # Whether and how it failed may depend on the private rows: no detail leaves
                # the job (the operator's log has it), and the whole reservation is charged.
                log.warning("job %s failed in its worker: %s", job.id, result["error"])
                self._end(job, "FAILED", "training failed; charged its whole reservation (details in the service log)", None, releases=_whole_reservation(job))
                return
            if g is None:
                mechanism = spent.mechanism()
            stated = composed_guarantee(g, releases, target_epsilon=spec["target_epsilon"], person_key=spec.get("person_key", "")) if g else None
            self._end(job, "FAILED", result["error"], mechanism, releases=releases, guarantee=stated)
            return
        # The metrics leave the job from here on: their release is charged with the rest,
        # and recorded first, so that a restart from here on charges it too.
        releases += releases_from_json([result["evaluation"]])
        spent.releases[:] = releases
        record_releases(self._rt, job.id, releases)
        stated = composed_guarantee(g, releases, target_epsilon=spec["target_epsilon"], person_key=spec.get("person_key", ""))
        ending = dict(releases=releases, guarantee=stated, metrics=result["metrics"], device=result["device"])
        if result["cancelled"]:
            self._end(job, "CANCELLED", result["refusal"] or "cancelled", mechanism, **ending)
        elif not result["registrable"]:
            self._end(job, "FAILED", f"model not registered: {result['refusal']}", mechanism, **ending)
        else:
            weights = (workdir / "weights.safetensors").read_bytes()
            ending["weights_digest"] = hashlib.sha256(weights).hexdigest()
            self._end(job, "SUCCEEDED", "", mechanism, **ending, publish=lambda: (spec["model_name"], register_model(self._rt.home, job, spec, result, stated, data, weights)))

    def _end(self, job: TrainingJob, state: str, reason: str, mechanism: Mechanism | None, *, releases: tuple[Release, ...], guarantee: dict | None = None,
             metrics: dict | None = None, device: str = "", publish: Callable[[], tuple[str, int]] | None = None, weights_digest: str = "") -> None:
        """Charge the job, then publish what it made (`publish` registers the model), then
        end it. Nothing is published before the charge is committed; a charge the data's
        budget cannot hold ends the job with nothing published and nothing charged."""
        try:
            charge_job(self._rt, job.id, mechanism, releases=releases, guarantee=guarantee, metrics=metrics, within_reservation=True, weights_digest=weights_digest)
        except FailedPrecondition as exc:
            # The DP row count was published already (the progress's total steps follow
            # from it): charge that much, which always fits (pure ε, within the reservation).
            shown = tuple(r for r in releases if r.purpose == "rows")
            reason = f"nothing published: the data's privacy budget cannot hold this job's charge ({exc.message})"
            try:
                finish_job(self._rt, job.id, "FAILED", reason, None, releases=shown, within_reservation=True)
            except FailedPrecondition:
                self._finish_quietly(job.id, "FAILED", reason, None)
            return
        model = None
        if publish is not None:
            try:
                model = publish()
            except Exception as exc:
                detail = exc.details() if isinstance(exc, grpc.RpcError) and callable(getattr(exc, "details", None)) else str(exc)
                state, reason = "FAILED", f"registration failed: {detail}"
        self._finish_quietly(job.id, state, reason, mechanism, model=model, device=device)

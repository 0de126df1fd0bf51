"""Training job records. Every state change and its ledger entry commit in one transaction
with their audit events; the queue is the jobs table itself (SKIP LOCKED on PostgreSQL).

What a job may ask for, and its checks, is `job_spec` (`JobSpec` is re-exported here)."""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
import warnings
from dataclasses import asdict, replace
from typing import Any

import torch
from sqlalchemy import select
from sqlmodel import Session, col

from privet.governance.architectures import ModelSpec
from privet.governance.architectures.finetuned import FINE_TUNED_ARCH, check_hparams
from privet.governance.audit.log import Event
from privet.governance.datasets.catalog import get_dataset
from privet.governance.errors import FailedPrecondition, NotFound, PermissionDenied
from privet.governance.identity.principals import Principal
from privet.governance.paging import after_text
from privet.governance.policy.ownership import Owned, acting_principal, may, require
from privet.governance.privacy.accounting import Mechanism
from privet.governance.privacy.ledger import BudgetLedger
from privet.governance.privacy.plan import planned_selection_delta
from privet.governance.privacy.releases import Release, releases_from_json
from privet.governance.processes import identity_alive
from privet.governance.registry.base_models import resolve_base
from privet.governance.registry.facts import owned_version
from privet.governance.registry.ownership import owned_model
from privet.governance.registry.records import find_version
from privet.governance.runtime import Runtime
from privet.governance.store.registry_tables import Model
from privet.governance.store.training_tables import TERMINAL_STATES, TrainingJob
from privet.governance.training.job_spec import JobSpec, planned_selections, validate

__all__ = ["JOB_LOGGER", "owned_job", "JobSpec", "submit_job", "claim_next_job", "record_progress", "record_releases", "charge_job", "finish_job", "cancel_job", "get_job", "list_jobs", "recover_orphans", "planned_steps"]

#: Each state change of a job is logged here at INFO, with `job_id` and `state` as fields
#: (a JSON log line carries them: services/common/logging_setup).
JOB_LOGGER = "privet.training"
log = logging.getLogger(JOB_LOGGER)


def _log_state(job: TrainingJob, message: str, *args: object, **fields: object) -> None:
    log.info(f"job %s {message}", job.id, *args, extra={"job_id": job.id, "state": job.state, **fields})


def _now_us() -> int:
    return int(time.time() * 1e6)


def planned_steps(epochs: int, sample_rate: float) -> int:
    """The horizon σ is calibrated for (Opacus's Poisson sampler runs 1/q steps an epoch):
    the most steps a job can take, so the most any lease may allow. Within it, the ε of any
    lease is at most the job's reservation."""
    return int(epochs / sample_rate)

def owned_job(job: TrainingJob) -> Owned:
    """The job as Cedar sees it for an ownership decision."""
    return Owned("Job", job.id, {"owner": job.submitted_by, "team": job.team, "dataset": job.dataset_id}, f"job/{job.id}")


def _with_resolved_base(runtime: Runtime, submitter: Principal, spec: JobSpec) -> JobSpec:
    """The job with its base recorded as Privet finds it now (a released base, its digest
    and files), never as the caller describes it — the job trains on exactly that — and its
    fine-tuning settings checked, before anything is reserved. The submitter must be allowed
    to read the base (another team's base is not theirs to build on)."""
    with runtime.read() as s:
        base = resolve_base(s, spec.hparams.get("base"))
        row = find_version(s, base["model"], base["version"], "")
        model = s.get(Model, row.model_name)
    require(runtime, submitter, "model.read", owned_version(row, model))
    hparams = check_hparams({**spec.hparams, "base": base})
    # Built on the meta device (shapes only, no memory): LoRA targets, layer counts and the
    # head are checked against the base's config now, not in the worker after reserving.
    outputs = int(base["config"].get("vocab_size", 2)) if hparams["task"] == "causal-lm" else 2
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        ModelSpec.create(FINE_TUNED_ARCH, int(hparams["max_length"]), max(outputs, 2), **hparams).build()
    return replace(spec, hparams=hparams)


def submit_job(runtime: Runtime, principal: Principal | str, spec: JobSpec) -> TrainingJob:
    """Validate, reserve the target ε against the dataset's budget and queue the job, in one
    transaction: ResourceExhausted (with what is left) leaves nothing behind. The job is
    bound to the dataset's id (a name reused after deletion is another dataset); the
    submitter must be allowed to spend that dataset's budget and to add versions to the
    model it will register (policies/ownership.cedar)."""
    submitter = acting_principal(runtime, principal)
    principal = submitter.id.principal
    dataset = get_dataset(runtime, spec.dataset, principal=submitter, action="dataset.spend")
    if spec.arch == FINE_TUNED_ARCH:
        spec = _with_resolved_base(runtime, submitter, spec)
    spec = validate(spec, json.loads(dataset.columns_json), dataset.rows)
    with runtime.read() as s:
        model = s.get(Model, spec.model_name)
    if model is not None:
        require(runtime, submitter, "model.add-version", owned_model(model))
    job = TrainingJob(
        id=str(uuid.uuid4()), dataset_id=dataset.id, dataset_name=dataset.name, dataset_digest=dataset.blob_digest,
        spec_json=json.dumps(asdict(spec)), state="QUEUED", submitted_by=principal, submitted_at_us=_now_us(), epsilon_reserved=spec.target_epsilon,
        team=submitter.team,
    )
    ledger = BudgetLedger(runtime.audit)

    selections = planned_selections(spec, json.loads(dataset.columns_json))

    def queue(session: Session) -> TrainingJob:
        # The model name is the submitter's from now on: nobody else can take it while the
        # job trains and make its registration (after its budget was spent) fail.
        model = session.get(Model, spec.model_name, with_for_update=True)
        if model is None:
            session.add(Model(name=spec.model_name, owner=principal, team=submitter.team, created_us=_now_us(), latest_version=0))
        elif not may(runtime, submitter, "model.add-version", owned_model(model))[0]:
            raise PermissionDenied(f"{principal} may not add versions to model {spec.model_name!r} (owned by another team)")
        ledger.reserve(session, dataset.id, job.id, spec.target_epsilon, spec.delta, principal, release_delta=planned_selection_delta(spec.delta, selections))
        session.add(job)
        runtime.audit.append(Event(principal=principal, action="training.SubmitJob", resource=f"job/{job.id}", decision="allow", details={"dataset": dataset.name, "arch": spec.arch, "target_epsilon": spec.target_epsilon, "delta": spec.delta}))
        return job

    queued: TrainingJob = runtime.write(queue)
    _log_state(queued, "queued by %s on dataset %s (%s, ε %g)", principal, dataset.name, spec.arch, spec.target_epsilon,
               dataset=dataset.name, submitted_by=principal, target_epsilon=spec.target_epsilon)
    return queued


def get_job(runtime: Runtime, job_id: str, *, principal: Principal | str | None = None) -> TrainingJob:
    """The job; with `principal`, only if the ownership policy lets them read it (audited denial)."""
    with runtime.read() as s:
        job = s.get(TrainingJob, job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    if principal is not None:
        require(runtime, principal, "job.read", owned_job(job))
    return job


def list_jobs(runtime: Runtime, *, dataset: str = "", state: str = "", after: str = "", limit: int = 100, principal: Principal | str | None = None) -> list[TrainingJob]:
    """Jobs by id after `after` (a page token); with `principal`, only those they may read."""
    after = after_text(after)
    out: list[TrainingJob] = []
    while len(out) < limit:
        query = select(TrainingJob).where(col(TrainingJob.id) > after)
        if dataset:
            query = query.where(col(TrainingJob.dataset_name) == dataset)
        if state:
            query = query.where(col(TrainingJob.state) == state)
        with runtime.read() as s:
            rows = list(s.execute(query.order_by(col(TrainingJob.id)).limit(limit)).scalars())
        out.extend(j for j in rows if principal is None or may(runtime, principal, "job.read", owned_job(j))[0])
        if len(rows) < limit:
            break
        after = rows[-1].id
    return out[:limit]


def claim_next_job(runtime: Runtime, worker: str) -> TrainingJob | None:
    """Take the oldest queued job. Several replicas may claim at once: SKIP LOCKED on
    PostgreSQL (SQLite serialises writers anyway) means each job goes to exactly one."""

    def claim(session: Session) -> TrainingJob | None:
        query = select(TrainingJob).where(col(TrainingJob.state) == "QUEUED").order_by(col(TrainingJob.submitted_at_us)).limit(1)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        job: TrainingJob | None = session.execute(query).scalars().first()
        if job is None:
            return None
        job.state, job.claimed_by, job.started_at_us, job.heartbeat_us = "RUNNING", worker, _now_us(), _now_us()
        session.add(job)
        runtime.audit.append(Event(principal="service/training", action="training.StartJob", resource=f"job/{job.id}", decision="info", details={"worker": worker}))
        return job

    claimed: TrainingJob | None = runtime.write(claim)
    if claimed is not None:
        _log_state(claimed, "started on %s", worker, worker=worker)
    return claimed


def record_progress(runtime: Runtime, job_id: str, progress: dict[str, Any], *, steps_allowed: int, noise_multiplier: float, sample_rate: float) -> bool:
    """Persist progress and the step lease (before the worker may use it). Returns whether a
    cancellation was requested."""

    def save(session: Session) -> bool:
        job = session.get(TrainingJob, job_id)
        if job is None or job.state != "RUNNING":
            return True
        job.progress_json, job.heartbeat_us = json.dumps(progress), _now_us()
        job.steps_allowed = max(job.steps_allowed, steps_allowed)
        job.noise_multiplier, job.sample_rate = noise_multiplier or job.noise_multiplier, sample_rate or job.sample_rate
        session.add(job)
        return job.cancel_requested

    return runtime.write(save)


def record_releases(runtime: Runtime, job_id: str, releases: tuple[Release, ...]) -> None:
    """Record the DP releases a running job has made, before anything else can fail: a
    job that ends without the scheduler (a restart) is charged for them too."""

    def save(session: Session) -> None:
        job = session.get(TrainingJob, job_id)
        if job is None or job.state != "RUNNING":
            raise FailedPrecondition(f"job {job_id} is not running")
        job.guarantee_json = json.dumps({"releases": [r.to_dict() for r in releases]})
        session.add(job)

    runtime.write(save)


def charge_job(runtime: Runtime, job_id: str, mechanism: Mechanism | None, *, releases: tuple[Release, ...] = (), guarantee: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
               within_reservation: bool = False, weights_digest: str = "") -> float:
    """Charge a running job for everything it spent (its DP-SGD run and its releases) and
    release the rest of its reservation, before anything it made is published: if the
    charge cannot be made (the data's budget cannot hold it), nothing leaves the job.
    The job stays RUNNING, marked charged; `finish_job` then ends it without charging again.
    `weights_digest` (SHA-256 hex of the weights the worker produced) is recorded with the
    charge: the registry establishes a version of this job only with exactly those weights.
    Returns the ε charged. FailedPrecondition if the job is not running or already charged."""
    ledger = BudgetLedger(runtime.audit)

    def charge(session: Session) -> float:
        job = session.get(TrainingJob, job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        if job.state in TERMINAL_STATES or job.charged_at_us:
            raise FailedPrecondition(f"job {job_id} already ended or was charged")
        _charge(ledger, session, job, mechanism, releases, guarantee, metrics, within_reservation)
        job.weights_digest = weights_digest
        session.add(job)
        return job.epsilon_charged

    return runtime.write(charge)


def _charge(ledger: BudgetLedger, session: Session, job: TrainingJob, mechanism: Mechanism | None, releases: tuple[Release, ...],
            guarantee: dict[str, Any] | None, metrics: dict[str, Any] | None, within_reservation: bool) -> None:
    """Settle the job's spend on the ledger and record it, with what it publishes."""
    job.epsilon_charged = ledger.settle(session, job.dataset_id, job.id, job.epsilon_reserved, mechanism, "service/training", releases=releases, within_reservation=within_reservation)
    job.charged_at_us = _now_us()
    job.guarantee_json = json.dumps(guarantee or {})
    job.metrics_json = json.dumps(metrics or {})
    # One ε figure everywhere: from here on the progress shows what the job states (its
    # guarantee, the conservative figure composed with its releases), or, with nothing
    # stated, what it was charged.
    stated = (guarantee or {}).get("epsilon")
    progress = json.loads(job.progress_json or "{}")
    job.progress_json = json.dumps({**progress, "epsilon": float(stated) if isinstance(stated, (int, float)) else job.epsilon_charged})


def finish_job(runtime: Runtime, job_id: str, state: str, reason: str, mechanism: Mechanism | None, *, releases: tuple[Release, ...] = (), guarantee: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None, model: tuple[str, int] | None = None, device: str = "", within_reservation: bool = False) -> TrainingJob:
    """End a job: charge what it spent (its DP-SGD mechanism, nothing if it took no step,
    and its other DP `releases`) unless `charge_job` already did, release the rest of its
    reservation, record the outcome, audit it — one transaction. `within_reservation`: see
    BudgetLedger.settle."""
    assert state in TERMINAL_STATES
    ledger = BudgetLedger(runtime.audit)

    def end(session: Session) -> TrainingJob:
        job = session.get(TrainingJob, job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        if job.state in TERMINAL_STATES:
            raise FailedPrecondition(f"job {job_id} already ended ({job.state})")
        if not job.charged_at_us:
            _charge(ledger, session, job, mechanism, releases, guarantee, metrics, within_reservation)
        charged = job.epsilon_charged
        job.state, job.reason, job.finished_at_us = state, reason, _now_us()
        job.device = device or job.device
        if model:
            job.model_name, job.model_version = model
        session.add(job)
        released_name = _release_unused_name(session, job) if not model else ""
        details = {"state": state, "reason": reason, "epsilon_charged": charged, "steps": mechanism.steps if mechanism else 0,
                   "model": f"{model[0]}:{model[1]}" if model else "", "weights_digest": job.weights_digest,
                   **({"released_model_name": released_name} if released_name else {})}
        runtime.audit.append(Event(principal="service/training", action="training.EndJob", resource=f"job/{job.id}", decision="info", details=details))
        return job

    ended: TrainingJob = runtime.write(end)
    outcome = {"SUCCEEDED": "succeeded", "FAILED": "failed", "CANCELLED": "was cancelled"}.get(state, state)
    _log_state(ended, "%s%s; ε %.4f charged%s", outcome, f": {reason}" if reason else "", ended.epsilon_charged,
               f"; registered {ended.model_name}:{ended.model_version}" if model else "",
               reason=reason, epsilon_charged=ended.epsilon_charged, **({"model": f"{ended.model_name}:{ended.model_version}"} if model else {}))
    return ended


def _release_unused_name(session: Session, job: TrainingJob) -> str:
    """A job that ends without a model gives back the model name it reserved at submit, when
    no version was ever registered under it and no other job still waits to use it (so a
    cancelled job does not squat a name for ever). Returns the name given back, or ""."""
    name: str = json.loads(job.spec_json).get("model_name", "")
    model = session.get(Model, name, with_for_update=True) if name else None
    if model is None or model.latest_version or model.owner != job.submitted_by:
        return ""
    waiting = session.execute(select(col(TrainingJob.spec_json)).where(col(TrainingJob.id) != job.id, col(TrainingJob.state).in_(("QUEUED", "RUNNING")))).scalars()
    if any(json.loads(spec).get("model_name") == name for spec in waiting):
        return ""
    session.delete(model)
    return name


def cancel_job(runtime: Runtime, principal: Principal | str, job_id: str, reason: str) -> TrainingJob:
    """A queued job ends at once (its reservation released); a running one is asked to stop
    and ends, charged for the steps it took, when its worker does. Only those the ownership
    policy lets cancel it may (PermissionDenied, audited)."""
    require(runtime, principal, "job.cancel", owned_job(get_job(runtime, job_id)))
    principal = acting_principal(runtime, principal).id.principal

    def cancel(session: Session) -> tuple[TrainingJob, bool]:
        job = session.get(TrainingJob, job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        if job.state in TERMINAL_STATES:
            raise FailedPrecondition(f"job {job_id} already ended ({job.state})")
        job.cancel_requested = True
        session.add(job)
        runtime.audit.append(Event(principal=principal, action="training.CancelJob", resource=f"job/{job.id}", decision="allow", details={"reason": reason, "state": job.state}))
        return job, job.state == "QUEUED"

    job, queued = runtime.write(cancel)
    _log_state(job, "cancellation requested by %s", principal, requested_by=principal)
    if queued:
        return finish_job(runtime, job_id, "CANCELLED", f"cancelled before it started: {reason}" if reason else "cancelled before it started", None)
    return job


def _claimer_is_dead(claimed_by: str) -> bool:
    """`claimed_by` is `<host>:<process identity>` (or, from older services, `<host>:<pid>`)."""
    host, _, identity = claimed_by.rpartition(":")
    return host == socket.gethostname() and not identity_alive(identity)


def _orphan_mechanism(job: TrainingJob) -> Mechanism | None:
    """An upper bound on what an orphan spent: every step its lease allowed, but never past
    the planned steps — the worker stops there, whatever lease an older service granted."""
    if not (job.steps_allowed and job.noise_multiplier):
        return None
    spec = json.loads(job.spec_json)
    steps = min(job.steps_allowed, planned_steps(spec["epochs"], job.sample_rate))
    return Mechanism(job.noise_multiplier, job.sample_rate, steps, spec["delta"])


def _recorded_releases(job: TrainingJob) -> tuple[Release, ...]:
    """The releases `record_releases` stored for a running job (none if it stored none)."""
    if job.charged_at_us:
        return ()  # charged already; finish_job will not charge again
    try:
        return releases_from_json(json.loads(job.guarantee_json or "{}").get("releases"))
    except (ValueError, AttributeError):
        return ()


def recover_orphans(runtime: Runtime, *, stale_after_s: float = 60.0) -> list[TrainingJob]:
    """Jobs left RUNNING by a service that died (its process is gone from this host, or it
    stopped beating): FAILED, charged for every step its lease allowed (capped at the
    planned steps) — an upper bound on what it took, and never more than it reserved — and
    never rerun."""
    cutoff = _now_us() - int(stale_after_s * 1e6)
    with runtime.read() as s:
        running = list(s.execute(select(TrainingJob).where(col(TrainingJob.state) == "RUNNING")).scalars())
    stale = [j for j in running if j.heartbeat_us < cutoff or _claimer_is_dead(j.claimed_by)]
    ended = []
    reason = "interrupted by a service restart; charged for every step its lease allowed"
    for job in stale:
        try:
            ended.append(finish_job(runtime, job.id, "FAILED", reason, _orphan_mechanism(job), releases=_recorded_releases(job), within_reservation=True))
        except FailedPrecondition:
            if get_job(runtime, job.id).state == "RUNNING":
                raise  # our own failure to end it, not another replica's success
    return ended



"""Training job records. Every state change and its ledger entry commit in one transaction
with their audit events; the queue is the jobs table itself (SKIP LOCKED on PostgreSQL)."""

from __future__ import annotations

import json
import math
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field

from sqlalchemy import select
from sqlmodel import Session

from privet.governance.architectures.models import architectures, input_kind
from privet.governance.architectures.tabular import MAX_CATEGORIES, check_bounds, check_domain
from privet.governance.audit.log import Event
from privet.governance.datasets.catalog import get_dataset
from privet.governance.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from privet.governance.identity.principals import Principal
from privet.governance.identity.spiffe import check_name
from privet.governance.policy.ownership import Owned, acting_principal, may, require
from privet.governance.privacy.accounting import Mechanism, accountant_names
from privet.governance.privacy.ledger import BudgetLedger, check_epsilon
from privet.governance.privacy.plan import planned_selection_delta
from privet.governance.privacy.releases import Release, releases_from_json
from privet.governance.processes import identity_alive
from privet.governance.registry.ownership import owned_model
from privet.governance.runtime import Runtime
from privet.governance.store.registry_tables import Model
from privet.governance.store.training_tables import TERMINAL_STATES, TrainingJob

__all__ = ["owned_job", "JobSpec", "submit_job", "claim_next_job", "record_progress", "record_releases", "charge_job", "finish_job", "cancel_job", "get_job", "list_jobs", "recover_orphans", "planned_steps"]

DEVICES = ("auto", "cpu", "cuda")
# The most noisy steps a job may plan (epochs × batches an epoch). Calibrating σ and
# accounting cost grows with it, in the service's own process, before any cancel can take
# effect: 10⁵ steps is far beyond any useful DP-SGD run on one dataset.
MAX_PLANNED_STEPS = 100_000
MAX_LEARNING_RATE = 10.0  # far above any that trains; beyond it the weights overflow
MAX_PHYSICAL_BATCH = 65_536  # rows per forward pass (memory), whatever the logical batch
NUMERIC_TYPES = ("int", "uint", "float", "double", "bool", "decimal")


def _numeric(type_name: str) -> bool:
    """Whether a dataset column's listed Arrow type is numeric."""
    return type_name.startswith(NUMERIC_TYPES)


@dataclass(frozen=True)
class JobSpec:
    dataset: str
    target: str
    features: tuple[str, ...] = ()
    arch: str = "mlp"
    epochs: int = 3
    batch_size: int = 256
    learning_rate: float = 1e-3
    target_epsilon: float = 3.0
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    device: str = "auto"
    seed: int = 0
    accountant: str = "prv"
    model_name: str = ""
    max_physical_batch_size: int = 1024
    hparams: dict = field(default_factory=dict)
    # Declared public by the job's owner (so not DP-released, nothing charged): bounds of
    # numeric features {column: [lower, upper]}, domains of string features
    # {column: [values]}, and the classifier's classes [labels]. Anything undeclared is
    # computed with DP from the job's share (governance.privacy.plan).
    feature_bounds: dict = field(default_factory=dict)
    categories: dict = field(default_factory=dict)
    classes: tuple[int, ...] = ()
    # A column naming the person each row is about: the job then keeps one row per person
    # and its guarantee holds per person (governance.training.preparation).
    person_key: str = ""


def _now_us() -> int:
    return int(time.time() * 1e6)


def planned_steps(epochs: int, sample_rate: float) -> int:
    """The horizon σ is calibrated for (Opacus's Poisson sampler runs 1/q steps an epoch):
    the most steps a job can take, so the most any lease may allow. Within it, the ε of any
    lease is at most the job's reservation."""
    return int(epochs / sample_rate)


def _validate(spec: JobSpec, columns: list[dict], rows: int) -> JobSpec:
    """Check the request against the dataset up front: InvalidArgument names the field."""
    by_name = {c["name"]: c for c in columns if c["action"] != "drop"}
    if spec.target not in by_name:
        raise InvalidArgument("target", f"no column {spec.target!r} in dataset {spec.dataset!r}")
    if not _numeric(by_name[spec.target]["type"]):
        raise InvalidArgument("target", f"a classifier's target must be numeric; {spec.target!r} is {by_name[spec.target]['type']}")
    features = spec.features or tuple(n for n in by_name if n != spec.target)
    for i, name in enumerate(features):
        if name not in by_name:
            raise InvalidArgument(f"features[{i}]", f"no column {name!r} in dataset {spec.dataset!r}")
        if name == spec.target:
            raise InvalidArgument(f"features[{i}]", "the target cannot be a feature")
    if spec.arch not in architectures():
        raise InvalidArgument("arch", f"unknown architecture {spec.arch!r} (known: {', '.join(architectures())})")
    if input_kind(spec.arch) == "tokens" and (len(features) != 1 or not by_name[features[0]]["type"].startswith(("string", "large_string"))):
        raise InvalidArgument("features", f"{spec.arch} takes exactly one text column")
    if spec.epochs < 1:
        raise InvalidArgument("epochs", "must be at least 1")
    if spec.batch_size < 1:
        raise InvalidArgument("batch_size", "must be at least 1")
    if spec.batch_size > rows:
        raise InvalidArgument("batch_size", f"{spec.batch_size} is larger than the dataset ({rows} rows)")
    if spec.epochs * math.ceil(rows / spec.batch_size) > MAX_PLANNED_STEPS:
        raise InvalidArgument("epochs", f"{spec.epochs} epochs of {math.ceil(rows / spec.batch_size)} batches is more than the {MAX_PLANNED_STEPS} steps a job may take")
    if not 0 < spec.learning_rate <= MAX_LEARNING_RATE:
        raise InvalidArgument("learning_rate", f"must be in (0, {MAX_LEARNING_RATE:g}]")
    if not 1 <= spec.max_physical_batch_size <= MAX_PHYSICAL_BATCH:
        raise InvalidArgument("max_physical_batch_size", f"must be in 1..{MAX_PHYSICAL_BATCH}")
    check_epsilon("target_epsilon", spec.target_epsilon)
    if not 0 < spec.delta < 1:
        raise InvalidArgument("delta", "must be in (0, 1)")
    if spec.delta >= 1 / rows:
        raise InvalidArgument("delta", f"δ {spec.delta:g} ≥ 1/n = {1 / rows:g}: it would allow releasing a whole row")
    if not 0 < spec.max_grad_norm < math.inf:
        raise InvalidArgument("max_grad_norm", "must be positive and finite")
    if spec.device not in DEVICES:
        raise InvalidArgument("device", f"must be one of {', '.join(DEVICES)}")
    if spec.accountant not in accountant_names():
        raise InvalidArgument("accountant", f"must be one of {', '.join(accountant_names())}")
    model_name = spec.model_name or f"{spec.dataset}-{spec.arch}"
    check_name(model_name, "model_name")
    declared = _validate_declared(spec, features, by_name)
    if spec.person_key and (spec.person_key not in by_name or spec.person_key == spec.target or spec.person_key in features):
        raise InvalidArgument("person_key", f"must name a column of {spec.dataset!r} that is neither the target nor a feature")
    return JobSpec(**(asdict(spec) | {"features": tuple(features), "model_name": model_name} | declared))


def _validate_declared(spec: JobSpec, features: tuple[str, ...], by_name: dict[str, dict]) -> dict:
    """Declared public parameters: each names a feature of the right kind and is well formed."""
    def numeric(name: str) -> bool:
        return _numeric(by_name[name]["type"])

    bounds = {}
    for name, pair in dict(spec.feature_bounds or {}).items():
        if name not in features or not numeric(name):
            raise InvalidArgument(f"feature_bounds[{name}]", "names no numeric feature of this job")
        try:
            bounds[name] = list(check_bounds(name, pair))
        except InvalidArgument as exc:
            raise InvalidArgument(f"feature_bounds[{name}]", exc.message) from None
    domains = {}
    for name, values in dict(spec.categories or {}).items():
        if name not in features or numeric(name):
            raise InvalidArgument(f"categories[{name}]", "names no string feature of this job")
        try:
            domains[name] = list(check_domain(name, list(values)))
        except InvalidArgument as exc:
            raise InvalidArgument(f"categories[{name}]", exc.message) from None
    classes = tuple(spec.classes or ())
    if classes:
        if any(isinstance(c, bool) or not isinstance(c, int) for c in classes):
            raise InvalidArgument("classes", "class labels must be whole numbers")
        if len(set(classes)) != len(classes) or not 2 <= len(classes) <= MAX_CATEGORIES:
            raise InvalidArgument("classes", f"between 2 and {MAX_CATEGORIES} distinct classes are needed")
    return {"feature_bounds": bounds, "categories": domains, "classes": tuple(sorted(classes))}


def owned_job(job: TrainingJob) -> Owned:
    """The job as Cedar sees it for an ownership decision."""
    return Owned("Job", job.id, {"owner": job.submitted_by, "team": job.team, "dataset": job.dataset_id}, f"job/{job.id}")


def submit_job(runtime: Runtime, principal: Principal | str, spec: JobSpec) -> TrainingJob:
    """Validate, reserve the target ε against the dataset's budget and queue the job, in one
    transaction: ResourceExhausted (with what is left) leaves nothing behind. The job is
    bound to the dataset's id (a name reused after deletion is another dataset); the
    submitter must be allowed to spend that dataset's budget and to add versions to the
    model it will register (policies/ownership.cedar)."""
    submitter = acting_principal(runtime, principal)
    principal = submitter.id.principal
    dataset = get_dataset(runtime, spec.dataset, principal=submitter, action="dataset.spend")
    spec = _validate(spec, json.loads(dataset.columns_json), dataset.rows)
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

    selections = _planned_selections(spec, json.loads(dataset.columns_json))

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

    return runtime.write(queue)


def _planned_selections(spec: JobSpec, columns: list[dict]) -> int:
    """How many DP partition selections the job will make (each spends δ): its undeclared
    string features' domains, and its classes unless declared (governance.privacy.plan)."""
    types = {c["name"]: c["type"] for c in columns}
    tabular = input_kind(spec.arch) != "tokens"
    strings = [f for f in spec.features if tabular and not _numeric(types.get(f, ""))]
    return sum(1 for f in strings if f not in spec.categories) + (0 if spec.classes else 1)


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
    """Jobs by id after `after`; with `principal`, only those they may read."""
    out: list[TrainingJob] = []
    while len(out) < limit:
        query = select(TrainingJob).where(TrainingJob.id > after)
        if dataset:
            query = query.where(TrainingJob.dataset_name == dataset)
        if state:
            query = query.where(TrainingJob.state == state)
        with runtime.read() as s:
            rows = list(s.execute(query.order_by(TrainingJob.id).limit(limit)).scalars())
        out.extend(j for j in rows if principal is None or may(runtime, principal, "job.read", owned_job(j))[0])
        if len(rows) < limit:
            break
        after = rows[-1].id
    return out[:limit]


def claim_next_job(runtime: Runtime, worker: str) -> TrainingJob | None:
    """Take the oldest queued job. Several replicas may claim at once: SKIP LOCKED on
    PostgreSQL (SQLite serialises writers anyway) means each job goes to exactly one."""

    def claim(session: Session) -> TrainingJob | None:
        query = select(TrainingJob).where(TrainingJob.state == "QUEUED").order_by(TrainingJob.submitted_at_us).limit(1)
        if session.bind.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        job = session.execute(query).scalars().first()
        if job is None:
            return None
        job.state, job.claimed_by, job.started_at_us, job.heartbeat_us = "RUNNING", worker, _now_us(), _now_us()
        session.add(job)
        runtime.audit.append(Event(principal="service/training", action="training.StartJob", resource=f"job/{job.id}", decision="info", details={"worker": worker}))
        return job

    return runtime.write(claim)


def record_progress(runtime: Runtime, job_id: str, progress: dict, *, steps_allowed: int, noise_multiplier: float, sample_rate: float) -> bool:
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


def charge_job(runtime: Runtime, job_id: str, mechanism: Mechanism | None, *, releases: tuple[Release, ...] = (), guarantee: dict | None = None, metrics: dict | None = None,
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
            guarantee: dict | None, metrics: dict | None, within_reservation: bool) -> None:
    """Settle the job's spend on the ledger and record it, with what it publishes."""
    job.epsilon_charged = ledger.settle(session, job.dataset_id, job.id, job.epsilon_reserved, mechanism, "service/training", releases=releases, within_reservation=within_reservation)
    job.charged_at_us = _now_us()
    job.guarantee_json = json.dumps(guarantee or {})
    job.metrics_json = json.dumps(metrics or {})


def finish_job(runtime: Runtime, job_id: str, state: str, reason: str, mechanism: Mechanism | None, *, releases: tuple[Release, ...] = (), guarantee: dict | None = None, metrics: dict | None = None, model: tuple[str, int] | None = None, device: str = "", within_reservation: bool = False) -> TrainingJob:
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

    return runtime.write(end)


def _release_unused_name(session: Session, job: TrainingJob) -> str:
    """A job that ends without a model gives back the model name it reserved at submit, when
    no version was ever registered under it and no other job still waits to use it (so a
    cancelled job does not squat a name for ever). Returns the name given back, or ""."""
    name = json.loads(job.spec_json).get("model_name", "")
    model = session.get(Model, name, with_for_update=True) if name else None
    if model is None or model.latest_version or model.owner != job.submitted_by:
        return ""
    waiting = session.execute(select(TrainingJob.spec_json).where(TrainingJob.id != job.id, TrainingJob.state.in_(("QUEUED", "RUNNING")))).scalars()  # type: ignore[attr-defined]
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
        running = list(s.execute(select(TrainingJob).where(TrainingJob.state == "RUNNING")).scalars())
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



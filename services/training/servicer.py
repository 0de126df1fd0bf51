"""TrainingService: translate messages to governance.training calls, nothing more."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from privet.common.v1 import types_pb2
from privet.governance.architectures.finetuned import FINE_TUNED_ARCH
from privet.governance.errors import InvalidArgument
from privet.governance.paging import page_size
from privet.governance.privacy.guarantee import PRIVACY_UNIT
from privet.governance.runtime import Runtime
from privet.governance.training.job_record import JobRecord
from privet.governance.training.jobs import JobSpec, cancel_job, get_job, list_jobs, submit_job
from privet.services.common.identity import caller
from privet.services.training.registration import guarantee_to_proto
from privet.services.training.scheduler import Scheduler
from privet.training.v1 import training_pb2, training_pb2_grpc

__all__ = ["TrainingServicer", "job_message"]


def _ts(us: int) -> Timestamp | None:
    if not us:
        return None
    ts = Timestamp()
    ts.FromMicroseconds(us)
    return ts


def _progress(job: JobRecord) -> training_pb2.JobProgress:
    p = job.progress
    return training_pb2.JobProgress(job_id=job.id, state=f"JOB_STATE_{job.state}", epoch=p.epoch, step=p.step, total_steps=p.total_steps,
                                    epsilon_spent=p.epsilon_spent, eta_seconds=p.eta_seconds, reason=job.reason)


def job_message(job: JobRecord) -> training_pb2.Job:
    spec, g = job.spec, job.guarantee
    request = training_pb2.SubmitJobRequest(
        dataset=spec["dataset"], target=spec["target"], features=spec["features"], arch=spec["arch"], epochs=spec["epochs"], batch_size=spec["batch_size"],
        learning_rate=spec["learning_rate"], target_epsilon=spec["target_epsilon"], delta=spec["delta"], max_grad_norm=spec["max_grad_norm"],
        device=spec["device"], seed=spec["seed"], accountant=spec["accountant"], model_name=spec["model_name"], max_physical_batch_size=spec["max_physical_batch_size"],
        feature_bounds={k: training_pb2.Bounds(lower=v[0], upper=v[1]) for k, v in (spec.get("feature_bounds") or {}).items()},
        categories={k: training_pb2.Domain(values=v) for k, v in (spec.get("categories") or {}).items()},
        classes=[c for c in spec.get("classes") or [] if not isinstance(c, str)],
        class_names=[c for c in spec.get("classes") or [] if isinstance(c, str)],
        person_key=spec.get("person_key", ""),
        workers=spec.get("workers", 1),
    )
    tuned = spec.get("hparams") or {}
    if spec["arch"] == FINE_TUNED_ARCH and isinstance(tuned.get("base"), dict):
        base = tuned["base"]
        request.fine_tune.CopyFrom(training_pb2.FineTune(
            base=f"{base.get('model')}:{base.get('version')}", task=tuned.get("task", ""), tune=tuned.get("tune", ""),
            lora_rank=tuned.get("lora_rank") or 0, lora_alpha=tuned.get("lora_alpha") or 0.0, lora_targets=tuned.get("lora_targets") or [],
            last_k=tuned.get("last_k") or 0, max_length=tuned.get("max_length") or 0))
    guarantee = None
    if "sgd_epsilon" in g:
        guarantee = guarantee_to_proto(g)
    elif "noise_multiplier" in g:  # recorded before guarantees were composed
        guarantee = types_pb2.DPGuarantee(
            epsilon=g.get("conservative_epsilon", g.get("epsilon", 0.0)), delta=g["delta"], noise_multiplier=g["noise_multiplier"], sample_rate=g["sample_rate"],
            steps=g["steps"], accountant=g.get("conservative_accountant", g.get("accountant", "")), max_grad_norm=g["max_grad_norm"], privacy_unit=g.get("privacy_unit", PRIVACY_UNIT), target_epsilon=g["target_epsilon"],
        )
    return training_pb2.Job(
        id=job.id, state=f"JOB_STATE_{job.state}", reason=job.reason, request=request, submitted_by=job.submitted_by,
        submitted_at=_ts(job.submitted_at_us), started_at=_ts(job.started_at_us), finished_at=_ts(job.finished_at_us), progress=_progress(job),
        guarantee=guarantee, metrics=job.metrics, model_name=job.model_name, model_version=job.model_version, epsilon_reserved=job.epsilon_reserved, device=job.device,
    )


def _declared_classes(r: training_pb2.SubmitJobRequest) -> tuple[int | str, ...]:
    if r.classes and r.class_names:
        raise InvalidArgument("class_names", "declare a numeric target's classes or a text target's class names, not both")
    return tuple(r.classes) or tuple(r.class_names)


def _fine_tune(r: training_pb2.SubmitJobRequest) -> dict[str, Any]:
    """A fine-tuning request's settings as the `transformer` architecture's hyperparameters
    (what was left unset takes the architecture's defaults)."""
    if not r.HasField("fine_tune"):
        return {}
    f = r.fine_tune
    hparams: dict[str, Any] = {"base": f.base, "task": f.task or "sequence-classification", "tune": f.tune or "lora"}
    for name in ("lora_rank", "lora_alpha", "last_k", "max_length"):
        if getattr(f, name):
            hparams[name] = getattr(f, name)
    if f.lora_targets:
        hparams["lora_targets"] = list(f.lora_targets)
    return hparams


def _spec(r: training_pb2.SubmitJobRequest) -> JobSpec:
    tuned = _fine_tune(r)
    if tuned and r.arch not in ("", FINE_TUNED_ARCH):
        raise InvalidArgument("arch", f"a fine-tuning job trains the {FINE_TUNED_ARCH!r} architecture, not {r.arch!r}")
    return JobSpec(
        dataset=r.dataset, target=r.target, features=tuple(r.features), arch=FINE_TUNED_ARCH if tuned else (r.arch or "mlp"), hparams=tuned, epochs=r.epochs or 3, batch_size=r.batch_size or 256,
        learning_rate=r.learning_rate or 1e-3, target_epsilon=r.target_epsilon, delta=r.delta or 1e-5, max_grad_norm=r.max_grad_norm or 1.0,
        device=r.device or "auto", seed=r.seed, accountant=r.accountant or "prv", model_name=r.model_name, max_physical_batch_size=r.max_physical_batch_size or 1024,
        feature_bounds={k: [b.lower, b.upper] for k, b in r.feature_bounds.items()},
        categories={k: list(d.values) for k, d in r.categories.items()},
        classes=_declared_classes(r),
        person_key=r.person_key,
        workers=r.workers or 1,
    )


class TrainingServicer(training_pb2_grpc.TrainingServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self.scheduler = Scheduler(runtime)

    def start(self) -> None:
        self.scheduler.start()

    def stop(self, grace: float = 10.0) -> None:
        self.scheduler.stop(grace)

    def SubmitJob(self, request: training_pb2.SubmitJobRequest, context: grpc.ServicerContext) -> training_pb2.Job:
        return job_message(JobRecord.of(submit_job(self._rt, caller(context, self._rt), _spec(request))))

    def GetJob(self, request: training_pb2.GetJobRequest, context: grpc.ServicerContext) -> training_pb2.Job:
        return job_message(JobRecord.of(get_job(self._rt, request.job_id, principal=caller(context, self._rt))))

    def ListJobs(self, request: training_pb2.ListJobsRequest, context: grpc.ServicerContext) -> training_pb2.ListJobsResponse:
        size = page_size(request.page.page_size)
        state = training_pb2.JobState.Name(request.state).removeprefix("JOB_STATE_") if request.state else ""
        rows = list_jobs(self._rt, dataset=request.dataset, state=state, after=request.page.page_token, limit=size + 1, principal=caller(context, self._rt))
        token = rows[size - 1].id if len(rows) > size else ""
        return training_pb2.ListJobsResponse(jobs=[job_message(JobRecord.of(j)) for j in rows[:size]], next_page_token=token)

    def WatchJob(self, request: training_pb2.WatchJobRequest, context: grpc.ServicerContext) -> Iterator[training_pb2.JobProgress]:
        last = None
        get_job(self._rt, request.job_id, principal=caller(context, self._rt))  # ownership, once
        while context.is_active():
            job = JobRecord.of(get_job(self._rt, request.job_id))
            progress = _progress(job)
            if progress != last:
                yield progress
                last = progress
            if job.finished:
                return
            time.sleep(0.25)

    def CancelJob(self, request: training_pb2.CancelJobRequest, context: grpc.ServicerContext) -> training_pb2.Job:
        return job_message(JobRecord.of(cancel_job(self._rt, caller(context, self._rt), request.job_id, request.reason)))



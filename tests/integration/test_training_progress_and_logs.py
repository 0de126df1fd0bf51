"""What a watcher sees of a job: the planned total from the start, steps that advance, one ε
figure (the progress ends on the ε the job is charged and registered with), no NaN; and the
job's lifecycle in the service log at INFO, as text or one JSON object a line."""

from __future__ import annotations

import io
import json
import logging
import math

import pytest

from privet.governance.errors import FailedPrecondition
from privet.registry.v1 import registry_pb2
from privet.services.common.logging_setup import configure_logging
from privet.training.v1 import training_pb2
from tests.integration.test_training import _submit, _wait, stubs  # noqa: F401  (a fixture)


@pytest.fixture
def json_log():
    stream, level = io.StringIO(), logging.getLogger().level
    handler = configure_logging("json", logging.INFO, stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)
    logging.getLogger().setLevel(level)


def _lines(stream: io.StringIO, job_id: str) -> list[dict]:
    return [line for line in map(json.loads, stream.getvalue().splitlines()) if line.get("job_id") == job_id]


def test_progress_shows_the_plan_advances_and_ends_on_the_registered_epsilon(stubs) -> None:  # noqa: F811
    training, registry, _ = stubs
    job = _submit(training, epochs=3, batch_size=64)
    seen = list(training.WatchJob(training_pb2.WatchJobRequest(job_id=job.id), timeout=300))
    last = seen[-1]
    assert last.state == training_pb2.JOB_STATE_SUCCEEDED, last.reason
    done = training.GetJob(training_pb2.GetJobRequest(job_id=job.id))
    total = done.guarantee.steps
    running = [p for p in seen if p.state == training_pb2.JOB_STATE_RUNNING and p.total_steps]
    # The plan is shown before the worker's first step, and never changes.
    assert running[0].step == 0 and all(p.total_steps == total for p in running)
    steps = [p.step for p in running]
    assert steps == sorted(steps) and len(set(steps)) > 2 and last.step == total == last.total_steps
    assert all(math.isfinite(p.eta_seconds) and math.isfinite(p.epsilon_spent) for p in seen)
    # One ε figure: the watcher, the job and the registry agree at the end.
    version = registry.GetModelVersion(registry_pb2.GetModelVersionRequest(name=done.model_name, version=done.model_version))
    assert last.epsilon_spent == pytest.approx(done.guarantee.epsilon, rel=1e-12) == version.guarantee.epsilon
    assert done.progress.epsilon_spent == last.epsilon_spent
    assert all(p.epsilon_spent <= last.epsilon_spent for p in seen)
    # While it trains, ε is the steps' conservative figure plus what is already released.
    released = sum(r.epsilon for r in done.guarantee.releases if r.purpose != "evaluation")
    assert running[0].epsilon_spent == pytest.approx(released)


def test_the_lifecycle_is_logged_at_info_as_json(stubs, json_log, monkeypatch) -> None:  # noqa: F811
    from privet.services.training import scheduler as scheduler_module

    training, _, _ = stubs
    ok = _submit(training, model_name="logged")
    assert _wait(training, ok.id).state == training_pb2.JOB_STATE_SUCCEEDED
    states = [(line["level"], line["state"]) for line in _lines(json_log, ok.id)]
    assert states == [("INFO", "QUEUED"), ("INFO", "RUNNING"), ("INFO", "SUCCEEDED")]
    first = _lines(json_log, ok.id)[0]
    assert first["logger"] == "privet.training" and "queued" in first["message"] and first["time"].endswith("+00:00")

    def refuse(*args, **kwargs):
        raise FailedPrecondition("the dataset is gone")

    monkeypatch.setattr(scheduler_module, "fetch_dataset", refuse)
    failed = _submit(training, model_name="refused")
    assert _wait(training, failed.id).state == training_pb2.JOB_STATE_FAILED
    end = _lines(json_log, failed.id)[-1]
    assert end["state"] == "FAILED" and end["level"] == "INFO" and "the dataset is gone" in end["reason"] and "failed" in end["message"]


def test_text_format_is_one_line_a_record() -> None:
    stream, level = io.StringIO(), logging.getLogger().level
    handler = configure_logging("text", "INFO", stream=stream)
    try:
        logging.getLogger("privet.training").info("job %s started", "j1", extra={"job_id": "j1"})
        logging.getLogger("privet.training").debug("not shown")
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(level)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith("INFO privet.training: job j1 started")
    with pytest.raises(ValueError):
        configure_logging("yaml", "INFO")  # type: ignore[arg-type]

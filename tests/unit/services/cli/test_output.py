"""One JSON shape per API object (docs/cli.md), and errors as JSON objects."""

from __future__ import annotations

from privet.audit.v1 import audit_pb2
from privet.common.v1 import types_pb2
from privet.governance.errors import InvalidArgument, NotFound, PermissionDenied
from privet.ingestion.v1 import ingestion_pb2
from privet.registry.v1 import registry_pb2
from privet.services.cli.output import error_object, iso_time, to_json
from privet.training.v1 import training_pb2


def test_an_event_keeps_seq_zero_and_reads_one_way() -> None:
    event = audit_pb2.AuditEvent(seq=0, principal="user/alice", action="ingestion.CreateDataset", decision="allow", details_json='{"rows": 3}', leaf=b"\x01")
    event.time.FromMicroseconds(1_767_225_600_000_001)
    out = to_json(event)
    assert out == {"seq": 0, "time": "2026-01-01T00:00:00.000001Z", "principal": "user/alice", "action": "ingestion.CreateDataset",
                   "resource": "", "decision": "allow", "policy_ids": [], "details": {"rows": 3}}


def test_a_job_has_every_field_enum_names_and_numbers() -> None:
    job = training_pb2.Job(id="j1", state=training_pb2.JOB_STATE_SUCCEEDED, model_version=7, request=training_pb2.SubmitJobRequest(dataset="d", seed=0))
    out = to_json(job)
    assert out["state"] == "SUCCEEDED" and out["model_version"] == 7 and out["request"]["seed"] == 0
    assert out["reason"] == "" and out["metrics"] == {} and out["finished_at"] is None and out["guarantee"] is None
    assert set(out) == {f.name for f in training_pb2.Job.DESCRIPTOR.fields}


def test_a_version_without_a_guarantee_has_none() -> None:
    v = registry_pb2.ModelVersion(model_name="m", version=1, stage=registry_pb2.STAGE_RELEASED, preprocessing_json='{"scale": 1}', has_guarantee=False)
    out = to_json(v)
    assert out["version"] == 1 and out["stage"] == "RELEASED" and out["guarantee"] is None
    assert out["preprocessing"] == {"scale": 1} and "preprocessing_json" not in out


def test_ledger_times_and_wiped_columns() -> None:
    entry = types_pb2.LedgerEntry(kind="open", time_us=1_767_225_600_000_000)
    assert to_json(entry)["time"] == iso_time(1_767_225_600_000_000) == "2026-01-01T00:00:00.000000Z" and "time_us" not in to_json(entry)
    report = ingestion_pb2.MaskingReport(k=50, rows_in=10, generalisation={"zip": "*", "age": "bins:10"})
    assert to_json(report)["suppressed_columns"] == ["zip"]


def test_errors_are_objects_with_what_is_known() -> None:
    assert error_object(InvalidArgument("header.k", "must be at least 1")) == {"error": {"code": "INVALID_ARGUMENT", "field": "header.k", "message": "must be at least 1"}}
    assert error_object(PermissionDenied("denied", policy_ids=("p1", "p2")))["error"] == {"code": "PERMISSION_DENIED", "message": "denied", "policy_ids": ["p1", "p2"]}
    assert error_object(NotFound("no dataset 'x'"))["error"] == {"code": "NOT_FOUND", "message": "no dataset 'x'"}

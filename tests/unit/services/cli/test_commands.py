"""The `privet` commands against stand-in stubs: one JSON shape per object whichever command
prints it, errors as one line (or a JSON object) and exit 1, help that lists allowed values,
readable human views, and `audit events` newest first."""

from __future__ import annotations

import contextlib
import json
import pathlib
from typing import Any

import pytest

from privet.audit.v1 import audit_pb2
from privet.common.v1 import types_pb2
from privet.governance.errors import InvalidArgument
from privet.ingestion.v1 import ingestion_pb2
from privet.registry.v1 import registry_pb2
from privet.services.cli import audit_cmds, ingest_cmds, registry_cmds, train_cmds
from privet.services.cli.app import main
from privet.services.cli.audit_cmds import parse_when
from privet.services.cli.infer_cmds import _floats, read_input
from privet.training.v1 import training_pb2


class FakeStub:
    """Answers each RPC from `replies` (a value, or a function of the request) and keeps the requests."""

    def __init__(self, **replies: Any) -> None:
        self.replies, self.requests = replies, {}

    def __getattr__(self, rpc: str) -> Any:
        def call(request: Any) -> Any:
            if hasattr(request, "__next__"):
                request = list(request)
            self.requests.setdefault(rpc, []).append(request)
            reply = self.replies[rpc]
            return reply(request) if callable(reply) else reply
        return call


def _use(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, stub: FakeStub) -> FakeStub:
    monkeypatch.setattr(module, name, lambda _ctx: contextlib.nullcontext(stub))
    return stub


def _run(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as ended:
        main(["--home", str(tmp_path / "home"), *args])
        raise SystemExit(0)
    out = capsys.readouterr()
    return int(ended.value.code or 0), out.out, out.err


def _shape(value: Any) -> Any:
    """Keys and value types, recursively: what must not differ between two commands."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def _dataset(**extra: Any) -> ingestion_pb2.Dataset:
    d = ingestion_pb2.Dataset(id="ds1", name="customers", rows=90, quasi_identifiers=["age", "zip"], profile="default", created_by="user/alice",
                              report=ingestion_pb2.MaskingReport(rows_in=100, rows_out=90, suppressed_rows=10, k=50, generalisation={"zip": "*", "age": "bins:10"}),
                              budget=types_pb2.PrivacyBudget(epsilon_total=8, epsilon_remaining=8, delta=1e-5),
                              columns=[ingestion_pb2.ColumnInfo(name="zip", type="string", action="generalise", detected_types=["ZIP"])], **extra)
    d.created_at.FromMicroseconds(1_767_225_600_000_000)
    return d


def test_datasets_show_and_list_print_one_shape(monkeypatch, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    shown = _dataset(ledger=[types_pb2.LedgerEntry(kind="open", epsilon=8, time_us=1_767_225_600_000_000)])
    _use(monkeypatch, ingest_cmds, "_ingestion", FakeStub(GetDataset=shown, ListDatasets=ingestion_pb2.ListDatasetsResponse(datasets=[_dataset()])))
    code, show, _ = _run(capsys, tmp_path, "--json", "datasets", "show", "customers")
    assert code == 0
    code, listed, _ = _run(capsys, tmp_path, "--json", "datasets", "list")
    assert code == 0
    one, many = json.loads(show), json.loads(listed)
    assert {k: v for k, v in _shape(one).items() if k != "ledger"} == {k: v for k, v in _shape(many[0]).items() if k != "ledger"}
    assert one["ledger"][0]["time"] == "2026-01-01T00:00:00.000000Z" and one["rows"] == 90 and one["report"]["suppressed_columns"] == ["zip"]


def test_datasets_show_is_readable_and_says_what_k_cost(monkeypatch, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _use(monkeypatch, ingest_cmds, "_ingestion", FakeStub(GetDataset=_dataset()))
    code, out, err = _run(capsys, tmp_path, "datasets", "show", "customers")
    assert code == 0 and "{'" not in out and '{"' not in out
    assert "generalised zip to `*`" in " ".join(err.split()) and "suppressed 10 of 100 rows" in err and "suggestion" in err


def test_jobs_show_and_train_print_one_shape(monkeypatch, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    def job(request: training_pb2.SubmitJobRequest | None = None) -> training_pb2.Job:
        return training_pb2.Job(id="j1", state=training_pb2.JOB_STATE_QUEUED, request=request or training_pb2.SubmitJobRequest(dataset="customers"), epsilon_reserved=3)

    stub = _use(monkeypatch, train_cmds, "_training", FakeStub(SubmitJob=job, GetJob=lambda _r: job()))
    code, submitted, err = _run(capsys, tmp_path, "--json", "train", "customers", "--target", "churn", "--max-grad-norm", "0.5", "--accountant", "rdp", "--arch", "logreg")
    assert code == 0, err
    request = stub.requests["SubmitJob"][0]
    assert request.max_grad_norm == 0.5 and request.accountant == "rdp" and request.arch == "logreg"
    code, shown, _ = _run(capsys, tmp_path, "--json", "jobs", "show", "j1")
    assert code == 0
    assert _shape(json.loads(submitted)) == _shape(json.loads(shown)) and json.loads(shown)["state"] == "QUEUED"
    code, human, _ = _run(capsys, tmp_path, "jobs", "show", "j1")
    assert code == 0 and "QUEUED" in human and "{" not in human


def test_models_show_version_is_a_view_not_json(monkeypatch, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    v = registry_pb2.ModelVersion(model_name="churn", version=1, stage=registry_pb2.STAGE_RELEASED, provenance="established", preprocessing_json="{}")
    _use(monkeypatch, registry_cmds, "_registry", FakeStub(GetModelVersion=v))
    code, out, _ = _run(capsys, tmp_path, "models", "show", "churn:1")
    assert code == 0 and "RELEASED" in out and "{" not in out
    code, out, _ = _run(capsys, tmp_path, "--json", "models", "show", "churn:1")
    assert json.loads(out)["version"] == 1 and json.loads(out)["stage"] == "RELEASED"


def _events(n: int) -> list[audit_pb2.AuditEvent]:
    out = []
    for seq in range(n):
        e = audit_pb2.AuditEvent(seq=seq, principal="user/alice", action="registry.Create" if seq % 2 else "ingestion.Create", resource=f"model/m/{seq}", decision="allow", details_json="{}")
        e.time.FromMicroseconds(1_767_225_600_000_000 + seq)
        out.append(e)
    return out


def test_audit_events_newest_first_with_seq_zero_and_every_filter_sent_to_the_server(monkeypatch, capsys, tmp_path) -> None:
    # The server lists newest first and applies the filters (a trailing * is its prefix rule).
    newest = list(reversed(_events(6)))
    stub = _use(monkeypatch, audit_cmds, "_audit_stub", FakeStub(ListEvents=lambda r: audit_pb2.ListEventsResponse(events=newest[: r.page.page_size])))
    code, out, _ = _run(capsys, tmp_path, "--json", "audit", "events")
    assert code == 0 and [e["seq"] for e in json.loads(out)] == [5, 4, 3, 2, 1, 0]
    assert json.loads(out)[-1]["time"] == "2026-01-01T00:00:00.000000Z" and json.loads(out)[-1]["details"] == {}
    assert all(r.newest_first for r in stub.requests["ListEvents"])
    code, out, _ = _run(capsys, tmp_path, "--json", "audit", "events", "--action", "ingestion.*", "--limit", "2")
    assert [e["seq"] for e in json.loads(out)] == [5, 4]
    last = stub.requests["ListEvents"][-1]
    assert last.action == "ingestion.*" and last.page.page_size == 2
    code, out, _ = _run(capsys, tmp_path, "--json", "audit", "events", "--resource", "model/m/3", "--since", "2026-01-01T00:00:00Z")
    last = stub.requests["ListEvents"][-1]
    assert last.resource == "model/m/3" and last.since.ToMicroseconds() == 1_767_225_600_000_000


def test_when_reads_iso_and_spans() -> None:
    now = 1_767_225_600_000_000
    assert parse_when("--since", "1h", now_us=now) == now - 3_600_000_000
    assert parse_when("--since", "30s", now_us=now) == now - 30_000_000
    assert parse_when("--since", "2026-01-01", now_us=now) == now
    assert parse_when("--since", "2026-01-01T01:00:00+01:00", now_us=0) == now
    with pytest.raises(InvalidArgument) as caught:
        parse_when("--until", "yesterday", now_us=now)
    assert caught.value.field == "--until"


def test_a_missing_option_is_one_line_and_exit_1(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "t.csv"
    data.write_text("a\n1\n")
    code, out, err = _run(capsys, tmp_path, "ingest", str(data))
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1 and "--name" in err and "Usage" not in err
    code, out, err = _run(capsys, tmp_path, "--json", "ingest", str(data))
    assert code == 1 and json.loads(out) == {"error": {"code": "INVALID_ARGUMENT", "field": "--name", "message": "Missing option '--name'."}}


def test_a_value_outside_its_home_is_refused_naming_the_option(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = _run(capsys, tmp_path, "--json", "train", "customers", "--target", "churn", "--device", "tpu")
    error = json.loads(out)["error"]
    assert code == 1 and error["field"] == "--device" and "auto, cpu, cuda" in error["message"]


def test_server_errors_are_json_objects(monkeypatch, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    def refuse(_request: Any) -> None:
        raise InvalidArgument("header.k", "must be at least 1")

    _use(monkeypatch, ingest_cmds, "_ingestion", FakeStub(GetDataset=refuse))
    code, out, err = _run(capsys, tmp_path, "--json", "datasets", "show", "x")
    assert code == 1 and json.loads(out) == {"error": {"code": "INVALID_ARGUMENT", "field": "header.k", "message": "must be at least 1"}} and err == ""


def test_help_lists_allowed_values_from_their_homes(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from privet.governance.architectures.models import architectures
    from privet.governance.privacy.accounting import accountant_names
    from privet.governance.training.job_spec import DEVICES

    masking = tmp_path / "home" / "policies" / "masking"
    masking.mkdir(parents=True)
    for name in ("default", "research"):
        (masking / f"{name}.yaml").write_text("")
    code, out, _ = _run(capsys, tmp_path, "train", "--help")
    flat = " ".join(out.replace("│", " ").split())
    assert code == 0 and all(a in flat for a in architectures()) and ", ".join(DEVICES) in flat and ", ".join(accountant_names()) in flat
    assert "--max-grad-norm" in flat
    code, out, _ = _run(capsys, tmp_path, "ingest", "--help")
    flat = " ".join(out.replace("│", " ").split())
    assert "default, research" in flat and "csv, jsonl, parquet" in flat and "--l-diversity" in flat and "--dry-run" in flat


def test_ingest_dry_run_previews_and_sends_l_diversity(monkeypatch, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "t.csv"
    data.write_text("age,zip,diagnosis\n30,12345,flu\n")
    preview = ingestion_pb2.PreviewMaskingResponse(columns=[ingestion_pb2.ColumnPreview(name="zip", action="generalise", original=["12345"], masked=["123**"])])
    stub = _use(monkeypatch, ingest_cmds, "_ingestion", FakeStub(PreviewMasking=preview))
    code, out, err = _run(capsys, tmp_path, "ingest", str(data), "--name", "t", "--quasi-identifiers", "age,zip", "--k", "2",
                          "--sensitive-column", "diagnosis", "--l-diversity", "2", "--max-suppression", "0.1", "--dry-run")
    assert code == 0, err
    header = stub.requests["PreviewMasking"][0][0].header
    assert (header.sensitive_column, header.l_diversity, header.max_suppression) == ("diagnosis", 2, pytest.approx(0.1))
    assert "123**" in out and "CreateDataset" not in stub.requests
    code, out, err = _run(capsys, tmp_path, "ingest", str(data), "--name", "t", "--l-diversity", "2")
    assert code == 1 and "--sensitive-column" in err


def test_ingest_warns_when_k_wipes_a_column(monkeypatch, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "t.csv"
    data.write_text("age,zip\n30,12345\n")
    _use(monkeypatch, ingest_cmds, "_ingestion", FakeStub(CreateDataset=_dataset()))
    code, _, err = _run(capsys, tmp_path, "ingest", str(data), "--name", "customers", "--quasi-identifiers", "age,zip", "--k", "50")
    flat = " ".join(err.split())
    assert code == 0 and "warning: k=50 generalised zip to `*`" in flat and "drop zip from --quasi-identifiers (keeping age)" in flat


def test_infer_input_long_json_and_values_that_do_not_convert(tmp_path) -> None:  # type: ignore[no-untyped-def]
    long = json.dumps({"age": list(range(100)), "plan": ["basic"] * 100})
    assert len(long) > 255 and read_input(long)["age"][99] == 99
    assert read_input(json.dumps([{"a": 1}, {"a": 2}])) == {"a": [1, 2]}
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n1,x\n")
    assert read_input(str(rows)) == {"a": [1.0], "b": ["x"]}
    for bad in ("{not json", "no-such-file.csv", "[1, 2]"):
        with pytest.raises(InvalidArgument) as caught:
            read_input(bad)
        assert caught.value.field == "--input"
    with pytest.raises(InvalidArgument) as caught:
        _floats("age", [40, "forty"])
    assert caught.value.field == "--input age" and "row 1" in caught.value.description and "'forty'" in caught.value.description

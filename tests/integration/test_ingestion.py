"""IngestionService over real mTLS: PII masked and k-anonymous, bad input refused cleanly."""

from __future__ import annotations

import io
import pathlib

import grpc
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from privet.governance.datasets.synthetic import PII_COLUMNS, customer_table
from privet.governance.runtime import Runtime
from privet.governance.store.dataset_tables import Dataset
from privet.governance.store.tables import AuditEvent
from privet.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from tests.helpers import bad_request_fields, channel

QIS = ["age", "zip", "sex"]


def _csv_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    return sink.getvalue()


def _requests(header: ingestion_pb2.DatasetHeader, data: bytes, chunk: int = 64 * 1024):
    yield ingestion_pb2.CreateDatasetRequest(header=header)
    for i in range(0, len(data), chunk):
        yield ingestion_pb2.CreateDatasetRequest(chunk=data[i : i + chunk])


def _header(name: str = "", **kw) -> ingestion_pb2.DatasetHeader:
    base = dict(name=name, format=ingestion_pb2.DATA_FORMAT_CSV, profile="default", quasi_identifiers=QIS, k=5, epsilon_budget=8, delta_budget=1e-5)
    base.update(kw)
    return ingestion_pb2.DatasetHeader(**base)


@pytest.fixture
def ingestion(servers, sqlite_runtime):
    with channel(sqlite_runtime.home, "alice", servers["ingestion"]) as ch:
        yield ingestion_pb2_grpc.IngestionServiceStub(ch)


def _stored_objects(rt: Runtime) -> tuple[int, int, list[str]]:
    with rt.read() as s:
        datasets = s.execute(select(func.count()).select_from(Dataset)).scalar_one()
        # A refusal leaves its "deny" event (refusal_audit); nothing was created.
        events = s.execute(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "ingestion.CreateDataset", AuditEvent.decision != "deny")).scalar_one()
    tmp = sorted(p.name for p in (rt.settings.blob_dir / "tmp").iterdir())
    return datasets, events, tmp


def test_ingest_masks_every_pii_value_and_is_k_anonymous(ingestion, sqlite_runtime) -> None:
    raw = customer_table(1500, seed=11)
    d = ingestion.CreateDataset(_requests(_header("customers"), _csv_bytes(raw)))
    assert d.rows == d.report.rows_out and d.report.rows_in == 1500 and d.report.rows_out >= 1500 * 0.95
    stored = pq.read_table(sqlite_runtime.blobs.path_of(d.digest))
    text = " ".join(str(v) for col in stored.columns for v in col.to_pylist())
    for column in PII_COLUMNS:
        leaked = [v for v in raw[column].to_pylist() if v in text]
        assert not leaked, f"{column}: {leaked[:3]}"
    groups = stored.group_by(QIS).aggregate([("churned", "count")])
    assert min(groups["churned_count"].to_pylist()) >= 5
    events = {c.name: c.action for c in d.columns}
    assert events["email"] == "hash" and events["notes"] == "scan"
    # The report says what k-anonymity cost and what it bought: loss per column, and the
    # re-identification risk before and after (prosecutor at most 1/k after).
    assert set(d.report.column_loss) == set(QIS) and all(0 <= v <= 1 for v in d.report.column_loss.values())
    assert d.report.risk_after.prosecutor_highest <= 1 / 5 + 1e-9
    assert d.report.risk_before.prosecutor_highest >= d.report.risk_after.prosecutor_highest
    assert 0 < d.report.risk_after.marketer <= d.report.risk_before.marketer


def test_read_dataset_streams_arrow_ipc(ingestion) -> None:
    ingestion.CreateDataset(_requests(_header("readable", k=1, quasi_identifiers=[]), _csv_bytes(customer_table(300))))
    data = b"".join(m.arrow_ipc for m in ingestion.ReadDataset(ingestion_pb2.ReadDatasetRequest(name="readable", columns=["age", "churned"])))
    table = pa.ipc.open_stream(data).read_all()
    assert table.num_rows == 300 and table.column_names == ["age", "churned"]


def test_a_read_of_columns_a_dataset_lacks_is_refused_and_not_logged_as_a_read(ingestion, sqlite_runtime) -> None:
    ingestion.CreateDataset(_requests(_header("narrow", k=1, quasi_identifiers=[]), _csv_bytes(customer_table(50))))
    with pytest.raises(grpc.RpcError) as err:
        b"".join(m.arrow_ipc for m in ingestion.ReadDataset(ingestion_pb2.ReadDatasetRequest(name="narrow", columns=["age", "nope"])))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "nope" in err.value.details()
    with sqlite_runtime.read() as s:
        reads = s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "ingestion.ReadDataset", AuditEvent.resource == "dataset/narrow"))
    assert reads == 0  # no rows left, so no read is on record (an allow here was a false record)


@pytest.mark.parametrize(
    "header_kw,data,field",
    [
        ({}, b"", "chunk"),
        ({}, b"a,b\n1,2\n3,4,5\n", "line 3"),
        ({}, b'a,b\n1,"open\n', "chunk"),
        ({"quasi_identifiers": [], "k": 1}, b"a,b\n1,\xff\xfe\n", "column b"),
        ({"profile": "nope"}, b"a\n1\n", "header.profile"),
        ({"quasi_identifiers": ["missing"]}, b"a\n1\n", "header.quasi_identifiers[0]"),
        ({"name": "Bad Name"}, b"a\n1\n", "header.name"),
        ({"epsilon_budget": 0}, b"a\n1\n", "header.epsilon_budget"),
        ({"expected_size": 999}, b"a\n1\n", "chunk"),
    ],
    ids=["empty", "ragged", "unterminated", "bad-utf8", "unknown-profile", "unknown-qi", "bad-name", "no-budget", "ended-early"],
)
def test_bad_input_is_refused_and_nothing_is_stored(ingestion, sqlite_runtime, header_kw, data, field) -> None:
    before = _stored_objects(sqlite_runtime)
    with pytest.raises(grpc.RpcError) as err:
        ingestion.CreateDataset(_requests(_header(**({"name": "bad"} | header_kw)), data))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert bad_request_fields(err.value) == [field]
    assert _stored_objects(sqlite_runtime) == before


def test_pii_without_a_rule_fails_naming_the_column(ingestion, sqlite_runtime, tmp_path) -> None:
    profile = sqlite_runtime.home.policies / "masking" / "bare.yaml"
    profile.write_text("name: bare\nrules:\n  - {column: id, action: keep}\n")
    data = _csv_bytes(pa.table({"id": list(range(50)), "contact": [f"user{i}@example.com" for i in range(50)]}))
    with pytest.raises(grpc.RpcError) as err:
        ingestion.CreateDataset(_requests(_header("leaky", profile="bare", quasi_identifiers=[], k=1), data))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "contact" in err.value.details() and "EMAIL" in err.value.details()
    assert _stored_objects(sqlite_runtime)[0] == 0


def test_duplicate_names_and_erasure(ingestion, sqlite_runtime) -> None:
    data = _csv_bytes(customer_table(200))
    d = ingestion.CreateDataset(_requests(_header("dup", k=1, quasi_identifiers=[]), data))
    with pytest.raises(grpc.RpcError) as err:
        ingestion.CreateDataset(_requests(_header("dup", k=1, quasi_identifiers=[]), data))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    ingestion.DeleteDataset(ingestion_pb2.DeleteDatasetRequest(name="dup", reason="subject request"))
    assert not sqlite_runtime.blobs.exists(d.digest)
    with pytest.raises(grpc.RpcError) as err:
        ingestion.GetDataset(ingestion_pb2.GetDatasetRequest(name="dup"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with sqlite_runtime.read() as s:
        actions = [a for (a,) in s.execute(select(AuditEvent.action).where(AuditEvent.resource == "dataset/dup")).all()]
    assert actions == ["ingestion.CreateDataset", "ingestion.DeleteDataset"]


def test_preview_stores_nothing(ingestion, sqlite_runtime) -> None:
    before = _stored_objects(sqlite_runtime)
    reply = ingestion.PreviewMasking(_requests(_header("preview"), _csv_bytes(customer_table(100))))
    by_name = {c.name: c for c in reply.columns}
    assert by_name["email"].action == "hash" and by_name["email"].masked[0] != by_name["email"].original[0]
    # What k would cost, on the whole upload, as ingestion would record it (a dry run).
    assert reply.report.k == 5 and reply.report.rows_in == 100 and reply.report.rows_out + reply.report.suppressed_rows == 100
    assert set(reply.report.generalisation) == set(QIS)
    assert _stored_objects(sqlite_runtime) == before


def test_jsonl_and_parquet(ingestion, tmp_path: pathlib.Path) -> None:
    table = customer_table(120)
    jsonl = "\n".join(__import__("json").dumps(r) for r in table.to_pylist()).encode()
    d = ingestion.CreateDataset(_requests(_header("as-jsonl", format=ingestion_pb2.DATA_FORMAT_JSONL, k=1, quasi_identifiers=[]), jsonl))
    assert d.rows == 120
    sink = io.BytesIO()
    pq.write_table(table, sink)
    d = ingestion.CreateDataset(_requests(_header("as-parquet", format=ingestion_pb2.DATA_FORMAT_PARQUET, k=1, quasi_identifiers=[]), sink.getvalue()))
    assert d.rows == 120

"""IngestionService: translate messages to governance.datasets calls, nothing more."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pyarrow as pa
from google.protobuf.timestamp_pb2 import Timestamp

from privet.common.v1 import types_pb2
from privet.governance.datasets.catalog import (
    DatasetSpec,
    create_dataset,
    dataset_batches,
    dataset_budget,
    dataset_ledger,
    declare_personal_data,
    delete_dataset,
    get_dataset,
    list_datasets,
    preview_dataset,
)
from privet.governance.datasets.dataset_record import DatasetRecord, MaskingSummary
from privet.governance.datasets.formats import CsvDialect
from privet.governance.datasets.pipeline import AnonymisationSpec
from privet.governance.errors import InvalidArgument
from privet.governance.identity.principals import Principal
from privet.governance.paging import page_size
from privet.governance.runtime import Runtime
from privet.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from privet.services.common.identity import caller
from privet.services.common.streams import messages

__all__ = ["IngestionServicer", "dataset_message"]

_FORMATS = {ingestion_pb2.DATA_FORMAT_CSV: "csv", ingestion_pb2.DATA_FORMAT_JSONL: "jsonl", ingestion_pb2.DATA_FORMAT_PARQUET: "parquet"}


def _spec(header: ingestion_pb2.DatasetHeader) -> DatasetSpec:
    if header.format not in _FORMATS:
        raise InvalidArgument("header.format", "must be CSV, JSONL or PARQUET")
    return DatasetSpec(
        name=header.name,
        format=_FORMATS[header.format],
        profile=header.profile,
        anonymisation=AnonymisationSpec(tuple(header.quasi_identifiers), header.k or 1, header.sensitive_column, header.l_diversity or 1, header.max_suppression or None),
        dialect=CsvDialect(header.csv.delimiter, header.csv.quote_char, header.csv.encoding, not header.csv.no_header),
        epsilon=header.epsilon_budget,
        delta=header.delta_budget,
        description=header.description,
        personal=header.personal,
    )


def _split(requests: Iterator[ingestion_pb2.CreateDatasetRequest],
           context: grpc.ServicerContext) -> tuple[ingestion_pb2.DatasetHeader, Iterator[bytes]]:
    first = next(requests, None)
    if first is None or not first.HasField("header"):
        raise InvalidArgument("header", "the first message must be the header")
    header = first.header

    def chunks() -> Iterator[bytes]:
        received = 0
        for message in messages(requests, context, sized=bool(header.expected_size)):
            if message.HasField("header"):
                raise InvalidArgument("header", "only the first message may be a header")
            received += len(message.chunk)
            yield message.chunk
        if header.expected_size and received != header.expected_size:
            raise InvalidArgument("chunk", f"the stream ended after {received} of {header.expected_size} bytes")

    return header, chunks()


def budget_message(runtime: Runtime, dataset_id: str) -> types_pb2.PrivacyBudget:
    b = dataset_budget(runtime, dataset_id)
    return types_pb2.PrivacyBudget(epsilon_total=b.epsilon_total, delta=b.delta, epsilon_reserved=b.epsilon_reserved, epsilon_spent=b.epsilon_spent, epsilon_remaining=b.epsilon_remaining)


def _report_message(m: MaskingSummary) -> ingestion_pb2.MaskingReport:
    return ingestion_pb2.MaskingReport(rows_in=m.rows_in, rows_out=m.rows_out, suppressed_rows=m.suppressed_rows, generalisation=m.generalisation,
                                       information_loss=m.information_loss, k=m.k, column_loss=m.column_loss,
                                       risk_before=_risk_message(m.risk_before), risk_after=_risk_message(m.risk_after),
                                       recoded_rows=m.recoded_rows)


def _risk_message(risk: dict[str, Any]) -> ingestion_pb2.ReidentificationRisk | None:
    if not risk:
        return None
    prosecutor, journalist = risk["prosecutor"], risk["journalist"]
    return ingestion_pb2.ReidentificationRisk(
        prosecutor_highest=prosecutor["highest"], prosecutor_average=prosecutor["average"],
        records_at_risk=prosecutor["records_at_risk"], threshold=risk["threshold"],
        journalist_highest=journalist["highest"], journalist_average=journalist["average"],
        journalist_model=risk["journalist_model"], marketer=risk["marketer"])


def dataset_message(d: DatasetRecord, ledger: types_pb2.PrivacyBudget | None = None) -> ingestion_pb2.Dataset:
    created = Timestamp()
    created.FromMicroseconds(d.created_at_us)
    m = d.masking
    return ingestion_pb2.Dataset(
        id=d.id, name=d.name, digest=d.blob_digest, raw_digest=d.raw_digest, rows=d.rows, size_bytes=d.size_bytes,
        columns=[ingestion_pb2.ColumnInfo(name=c.name, type=c.type, action=c.action, detected_types=c.pii_types) for c in d.columns],
        profile=d.profile, profile_digest=d.profile_digest, domain=d.domain, key_version=d.key_version,
        report=_report_message(m),
        budget=ledger or types_pb2.PrivacyBudget(epsilon_total=d.epsilon_total, delta=d.delta, epsilon_remaining=d.epsilon_total),
        created_by=d.created_by, created_at=created, quasi_identifiers=d.quasi_identifiers, description=d.description,
        personal=d.personal, personal_basis=d.personal_basis, team=d.team,
    )


def _with_budget(runtime: Runtime, d: DatasetRecord) -> ingestion_pb2.Dataset:
    return dataset_message(d, budget_message(runtime, d.id))


class IngestionServicer(ingestion_pb2_grpc.IngestionServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def _who(self, context: grpc.ServicerContext) -> Principal:
        return caller(context, self._rt)

    def CreateDataset(self, request_iterator, context):
        header, chunks = _split(request_iterator, context)
        return _with_budget(self._rt, DatasetRecord.of(create_dataset(self._rt, self._who(context), _spec(header), chunks)))

    def PreviewMasking(self, request_iterator, context):
        header, chunks = _split(request_iterator, context)
        columns, report = preview_dataset(self._rt, _spec(header), chunks, principal=self._who(context))
        return ingestion_pb2.PreviewMaskingResponse(columns=[
            ingestion_pb2.ColumnPreview(name=c.column, action=c.action, detected_types=c.pii_types, original=[str(v) for v in c.original], masked=[str(v) for v in (c.masked or [])])
            for c in columns
        ], report=_report_message(MaskingSummary.of(report.to_dict())) if report is not None else None)

    def GetDataset(self, request, context):
        row = get_dataset(self._rt, request.name, dataset_id=request.dataset_id, principal=self._who(context))
        message = _with_budget(self._rt, DatasetRecord.of(row))
        message.ledger.extend(
            types_pb2.LedgerEntry(kind=e.kind, job_id=e.job_id, epsilon=e.epsilon_micro / 1e6, delta=e.delta, noise_multiplier=e.noise_multiplier or 0.0,
                                  sample_rate=e.sample_rate or 0.0, steps=e.steps or 0, accountant=e.accountant, principal=e.principal, time_us=e.time_us)
            for e in dataset_ledger(self._rt, row.id)
        )
        return message

    def ListDatasets(self, request, context):
        size = page_size(request.page.page_size)
        rows = list_datasets(self._rt, after=request.page.page_token, limit=size + 1, principal=self._who(context))
        token = rows[size - 1].name if len(rows) > size else ""
        return ingestion_pb2.ListDatasetsResponse(datasets=[_with_budget(self._rt, DatasetRecord.of(r)) for r in rows[:size]], next_page_token=token)

    def ReadDataset(self, request, context):
        """Arrow IPC stream bytes: the schema and each record batch as they are read."""
        sink = _Collector()
        writer = None
        for batch in dataset_batches(self._rt, request.name, list(request.columns), dataset_id=request.dataset_id, principal=self._who(context)):
            if writer is None:
                writer = pa.ipc.new_stream(sink, batch.schema)
            writer.write_batch(batch)
            yield ingestion_pb2.ReadDatasetResponse(arrow_ipc=sink.take())
        if writer is not None:
            writer.close()
            if tail := sink.take():
                yield ingestion_pb2.ReadDatasetResponse(arrow_ipc=tail)

    def DeleteDataset(self, request, context):
        return ingestion_pb2.DeleteDatasetResponse(dataset=dataset_message(DatasetRecord.of(delete_dataset(self._rt, self._who(context), request.name, request.reason))))

    def DeclarePersonalData(self, request, context):
        return _with_budget(self._rt, DatasetRecord.of(declare_personal_data(self._rt, self._who(context), request.name, request.personal, request.reason)))


class _Collector:
    """A write-only file object that hands back what was written since the last take()."""

    closed = False

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out

import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from privet.common.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DataFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_FORMAT_UNSPECIFIED: _ClassVar[DataFormat]
    DATA_FORMAT_CSV: _ClassVar[DataFormat]
    DATA_FORMAT_JSONL: _ClassVar[DataFormat]
    DATA_FORMAT_PARQUET: _ClassVar[DataFormat]
DATA_FORMAT_UNSPECIFIED: DataFormat
DATA_FORMAT_CSV: DataFormat
DATA_FORMAT_JSONL: DataFormat
DATA_FORMAT_PARQUET: DataFormat

class CsvOptions(_message.Message):
    __slots__ = ("delimiter", "quote_char", "encoding", "no_header")
    DELIMITER_FIELD_NUMBER: _ClassVar[int]
    QUOTE_CHAR_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    NO_HEADER_FIELD_NUMBER: _ClassVar[int]
    delimiter: str
    quote_char: str
    encoding: str
    no_header: bool
    def __init__(self, delimiter: _Optional[str] = ..., quote_char: _Optional[str] = ..., encoding: _Optional[str] = ..., no_header: _Optional[bool] = ...) -> None: ...

class DatasetHeader(_message.Message):
    __slots__ = ("name", "format", "profile", "quasi_identifiers", "k", "sensitive_column", "l_diversity", "epsilon_budget", "delta_budget", "csv", "max_suppression", "description", "expected_size", "personal")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    QUASI_IDENTIFIERS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    SENSITIVE_COLUMN_FIELD_NUMBER: _ClassVar[int]
    L_DIVERSITY_FIELD_NUMBER: _ClassVar[int]
    EPSILON_BUDGET_FIELD_NUMBER: _ClassVar[int]
    DELTA_BUDGET_FIELD_NUMBER: _ClassVar[int]
    CSV_FIELD_NUMBER: _ClassVar[int]
    MAX_SUPPRESSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SIZE_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    format: DataFormat
    profile: str
    quasi_identifiers: _containers.RepeatedScalarFieldContainer[str]
    k: int
    sensitive_column: str
    l_diversity: int
    epsilon_budget: float
    delta_budget: float
    csv: CsvOptions
    max_suppression: float
    description: str
    expected_size: int
    personal: bool
    def __init__(self, name: _Optional[str] = ..., format: _Optional[_Union[DataFormat, str]] = ..., profile: _Optional[str] = ..., quasi_identifiers: _Optional[_Iterable[str]] = ..., k: _Optional[int] = ..., sensitive_column: _Optional[str] = ..., l_diversity: _Optional[int] = ..., epsilon_budget: _Optional[float] = ..., delta_budget: _Optional[float] = ..., csv: _Optional[_Union[CsvOptions, _Mapping]] = ..., max_suppression: _Optional[float] = ..., description: _Optional[str] = ..., expected_size: _Optional[int] = ..., personal: _Optional[bool] = ...) -> None: ...

class CreateDatasetRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: DatasetHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[DatasetHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class ColumnInfo(_message.Message):
    __slots__ = ("name", "type", "action", "detected_types")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    DETECTED_TYPES_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    action: str
    detected_types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., action: _Optional[str] = ..., detected_types: _Optional[_Iterable[str]] = ...) -> None: ...

class MaskingReport(_message.Message):
    __slots__ = ("rows_in", "rows_out", "suppressed_rows", "generalisation", "information_loss", "cells_masked", "k", "column_loss", "risk_before", "risk_after", "recoded_rows")
    class GeneralisationEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ColumnLossEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ROWS_IN_FIELD_NUMBER: _ClassVar[int]
    ROWS_OUT_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_ROWS_FIELD_NUMBER: _ClassVar[int]
    GENERALISATION_FIELD_NUMBER: _ClassVar[int]
    INFORMATION_LOSS_FIELD_NUMBER: _ClassVar[int]
    CELLS_MASKED_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    COLUMN_LOSS_FIELD_NUMBER: _ClassVar[int]
    RISK_BEFORE_FIELD_NUMBER: _ClassVar[int]
    RISK_AFTER_FIELD_NUMBER: _ClassVar[int]
    RECODED_ROWS_FIELD_NUMBER: _ClassVar[int]
    rows_in: int
    rows_out: int
    suppressed_rows: int
    generalisation: _containers.ScalarMap[str, str]
    information_loss: float
    cells_masked: int
    k: int
    column_loss: _containers.ScalarMap[str, float]
    risk_before: ReidentificationRisk
    risk_after: ReidentificationRisk
    recoded_rows: int
    def __init__(self, rows_in: _Optional[int] = ..., rows_out: _Optional[int] = ..., suppressed_rows: _Optional[int] = ..., generalisation: _Optional[_Mapping[str, str]] = ..., information_loss: _Optional[float] = ..., cells_masked: _Optional[int] = ..., k: _Optional[int] = ..., column_loss: _Optional[_Mapping[str, float]] = ..., risk_before: _Optional[_Union[ReidentificationRisk, _Mapping]] = ..., risk_after: _Optional[_Union[ReidentificationRisk, _Mapping]] = ..., recoded_rows: _Optional[int] = ...) -> None: ...

class ReidentificationRisk(_message.Message):
    __slots__ = ("prosecutor_highest", "prosecutor_average", "records_at_risk", "threshold", "journalist_highest", "journalist_average", "journalist_model", "marketer")
    PROSECUTOR_HIGHEST_FIELD_NUMBER: _ClassVar[int]
    PROSECUTOR_AVERAGE_FIELD_NUMBER: _ClassVar[int]
    RECORDS_AT_RISK_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    JOURNALIST_HIGHEST_FIELD_NUMBER: _ClassVar[int]
    JOURNALIST_AVERAGE_FIELD_NUMBER: _ClassVar[int]
    JOURNALIST_MODEL_FIELD_NUMBER: _ClassVar[int]
    MARKETER_FIELD_NUMBER: _ClassVar[int]
    prosecutor_highest: float
    prosecutor_average: float
    records_at_risk: float
    threshold: float
    journalist_highest: float
    journalist_average: float
    journalist_model: str
    marketer: float
    def __init__(self, prosecutor_highest: _Optional[float] = ..., prosecutor_average: _Optional[float] = ..., records_at_risk: _Optional[float] = ..., threshold: _Optional[float] = ..., journalist_highest: _Optional[float] = ..., journalist_average: _Optional[float] = ..., journalist_model: _Optional[str] = ..., marketer: _Optional[float] = ...) -> None: ...

class Dataset(_message.Message):
    __slots__ = ("id", "name", "digest", "raw_digest", "rows", "size_bytes", "columns", "profile", "profile_digest", "domain", "key_version", "report", "budget", "created_by", "created_at", "quasi_identifiers", "description", "ledger", "personal", "personal_basis", "team")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    RAW_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    PROFILE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    QUASI_IDENTIFIERS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LEDGER_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    digest: str
    raw_digest: str
    rows: int
    size_bytes: int
    columns: _containers.RepeatedCompositeFieldContainer[ColumnInfo]
    profile: str
    profile_digest: str
    domain: str
    key_version: int
    report: MaskingReport
    budget: _types_pb2.PrivacyBudget
    created_by: str
    created_at: _timestamp_pb2.Timestamp
    quasi_identifiers: _containers.RepeatedScalarFieldContainer[str]
    description: str
    ledger: _containers.RepeatedCompositeFieldContainer[_types_pb2.LedgerEntry]
    personal: bool
    personal_basis: _containers.RepeatedScalarFieldContainer[str]
    team: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., digest: _Optional[str] = ..., raw_digest: _Optional[str] = ..., rows: _Optional[int] = ..., size_bytes: _Optional[int] = ..., columns: _Optional[_Iterable[_Union[ColumnInfo, _Mapping]]] = ..., profile: _Optional[str] = ..., profile_digest: _Optional[str] = ..., domain: _Optional[str] = ..., key_version: _Optional[int] = ..., report: _Optional[_Union[MaskingReport, _Mapping]] = ..., budget: _Optional[_Union[_types_pb2.PrivacyBudget, _Mapping]] = ..., created_by: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., quasi_identifiers: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., ledger: _Optional[_Iterable[_Union[_types_pb2.LedgerEntry, _Mapping]]] = ..., personal: _Optional[bool] = ..., personal_basis: _Optional[_Iterable[str]] = ..., team: _Optional[str] = ...) -> None: ...

class ColumnPreview(_message.Message):
    __slots__ = ("name", "action", "detected_types", "original", "masked")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    DETECTED_TYPES_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_FIELD_NUMBER: _ClassVar[int]
    MASKED_FIELD_NUMBER: _ClassVar[int]
    name: str
    action: str
    detected_types: _containers.RepeatedScalarFieldContainer[str]
    original: _containers.RepeatedScalarFieldContainer[str]
    masked: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., action: _Optional[str] = ..., detected_types: _Optional[_Iterable[str]] = ..., original: _Optional[_Iterable[str]] = ..., masked: _Optional[_Iterable[str]] = ...) -> None: ...

class PreviewMaskingResponse(_message.Message):
    __slots__ = ("columns", "report")
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    columns: _containers.RepeatedCompositeFieldContainer[ColumnPreview]
    report: MaskingReport
    def __init__(self, columns: _Optional[_Iterable[_Union[ColumnPreview, _Mapping]]] = ..., report: _Optional[_Union[MaskingReport, _Mapping]] = ...) -> None: ...

class GetDatasetRequest(_message.Message):
    __slots__ = ("name", "dataset_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    dataset_id: str
    def __init__(self, name: _Optional[str] = ..., dataset_id: _Optional[str] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ("page",)
    PAGE_FIELD_NUMBER: _ClassVar[int]
    page: _types_pb2.PageRequest
    def __init__(self, page: _Optional[_Union[_types_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets", "next_page_token")
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[Dataset]
    next_page_token: str
    def __init__(self, datasets: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReadDatasetRequest(_message.Message):
    __slots__ = ("name", "columns", "dataset_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    columns: _containers.RepeatedScalarFieldContainer[str]
    dataset_id: str
    def __init__(self, name: _Optional[str] = ..., columns: _Optional[_Iterable[str]] = ..., dataset_id: _Optional[str] = ...) -> None: ...

class ReadDatasetResponse(_message.Message):
    __slots__ = ("arrow_ipc",)
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    arrow_ipc: bytes
    def __init__(self, arrow_ipc: _Optional[bytes] = ...) -> None: ...

class DeleteDatasetRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DeleteDatasetResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ...) -> None: ...

class DeclarePersonalDataRequest(_message.Message):
    __slots__ = ("name", "personal", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    personal: bool
    reason: str
    def __init__(self, name: _Optional[str] = ..., personal: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

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

class Stage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STAGE_UNSPECIFIED: _ClassVar[Stage]
    STAGE_REGISTERED: _ClassVar[Stage]
    STAGE_CANDIDATE: _ClassVar[Stage]
    STAGE_APPROVED: _ClassVar[Stage]
    STAGE_RELEASED: _ClassVar[Stage]
    STAGE_REVOKED: _ClassVar[Stage]
STAGE_UNSPECIFIED: Stage
STAGE_REGISTERED: Stage
STAGE_CANDIDATE: Stage
STAGE_APPROVED: Stage
STAGE_RELEASED: Stage
STAGE_REVOKED: Stage

class ModelVersionMetadata(_message.Message):
    __slots__ = ("model_name", "architecture", "inputs", "outputs", "metrics", "lineage", "guarantee", "trained_on_personal_data", "preprocessing_json", "description", "expected_size", "base")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    GUARANTEE_FIELD_NUMBER: _ClassVar[int]
    TRAINED_ON_PERSONAL_DATA_FIELD_NUMBER: _ClassVar[int]
    PREPROCESSING_JSON_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SIZE_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    architecture: str
    inputs: _containers.RepeatedCompositeFieldContainer[_types_pb2.TensorSpec]
    outputs: _containers.RepeatedCompositeFieldContainer[_types_pb2.TensorSpec]
    metrics: _containers.ScalarMap[str, float]
    lineage: _types_pb2.Lineage
    guarantee: _types_pb2.DPGuarantee
    trained_on_personal_data: bool
    preprocessing_json: str
    description: str
    expected_size: int
    base: BaseModelDeclaration
    def __init__(self, model_name: _Optional[str] = ..., architecture: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[_types_pb2.TensorSpec, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[_types_pb2.TensorSpec, _Mapping]]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., lineage: _Optional[_Union[_types_pb2.Lineage, _Mapping]] = ..., guarantee: _Optional[_Union[_types_pb2.DPGuarantee, _Mapping]] = ..., trained_on_personal_data: _Optional[bool] = ..., preprocessing_json: _Optional[str] = ..., description: _Optional[str] = ..., expected_size: _Optional[int] = ..., base: _Optional[_Union[BaseModelDeclaration, _Mapping]] = ...) -> None: ...

class BaseModelDeclaration(_message.Message):
    __slots__ = ("license", "source")
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    license: str
    source: str
    def __init__(self, license: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class CreateModelVersionRequest(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: ModelVersionMetadata
    chunk: bytes
    def __init__(self, metadata: _Optional[_Union[ModelVersionMetadata, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class TensorInfo(_message.Message):
    __slots__ = ("name", "dtype", "shape")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class Approval(_message.Message):
    __slots__ = ("principal", "at", "note")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    principal: str
    at: _timestamp_pb2.Timestamp
    note: str
    def __init__(self, principal: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., note: _Optional[str] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("id", "model_name", "version", "stage", "digest", "size_bytes", "architecture", "inputs", "outputs", "metrics", "lineage", "guarantee", "has_guarantee", "trained_on_personal_data", "tensors", "preprocessing_json", "created_by", "created_at", "requested_by", "metric_thresholds", "approvals", "released_by", "revoked_reason", "erased", "key_id", "description", "provenance", "training_job_id", "personal_declared_by", "team", "attested")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class MetricThresholdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    GUARANTEE_FIELD_NUMBER: _ClassVar[int]
    HAS_GUARANTEE_FIELD_NUMBER: _ClassVar[int]
    TRAINED_ON_PERSONAL_DATA_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    PREPROCESSING_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    METRIC_THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    RELEASED_BY_FIELD_NUMBER: _ClassVar[int]
    REVOKED_REASON_FIELD_NUMBER: _ClassVar[int]
    ERASED_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    TRAINING_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_DECLARED_BY_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    ATTESTED_FIELD_NUMBER: _ClassVar[int]
    id: str
    model_name: str
    version: int
    stage: Stage
    digest: str
    size_bytes: int
    architecture: str
    inputs: _containers.RepeatedCompositeFieldContainer[_types_pb2.TensorSpec]
    outputs: _containers.RepeatedCompositeFieldContainer[_types_pb2.TensorSpec]
    metrics: _containers.ScalarMap[str, float]
    lineage: _types_pb2.Lineage
    guarantee: _types_pb2.DPGuarantee
    has_guarantee: bool
    trained_on_personal_data: bool
    tensors: _containers.RepeatedCompositeFieldContainer[TensorInfo]
    preprocessing_json: str
    created_by: str
    created_at: _timestamp_pb2.Timestamp
    requested_by: str
    metric_thresholds: _containers.ScalarMap[str, float]
    approvals: _containers.RepeatedCompositeFieldContainer[Approval]
    released_by: str
    revoked_reason: str
    erased: bool
    key_id: str
    description: str
    provenance: str
    training_job_id: str
    personal_declared_by: str
    team: str
    attested: bool
    def __init__(self, id: _Optional[str] = ..., model_name: _Optional[str] = ..., version: _Optional[int] = ..., stage: _Optional[_Union[Stage, str]] = ..., digest: _Optional[str] = ..., size_bytes: _Optional[int] = ..., architecture: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[_types_pb2.TensorSpec, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[_types_pb2.TensorSpec, _Mapping]]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., lineage: _Optional[_Union[_types_pb2.Lineage, _Mapping]] = ..., guarantee: _Optional[_Union[_types_pb2.DPGuarantee, _Mapping]] = ..., has_guarantee: _Optional[bool] = ..., trained_on_personal_data: _Optional[bool] = ..., tensors: _Optional[_Iterable[_Union[TensorInfo, _Mapping]]] = ..., preprocessing_json: _Optional[str] = ..., created_by: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., requested_by: _Optional[str] = ..., metric_thresholds: _Optional[_Mapping[str, float]] = ..., approvals: _Optional[_Iterable[_Union[Approval, _Mapping]]] = ..., released_by: _Optional[str] = ..., revoked_reason: _Optional[str] = ..., erased: _Optional[bool] = ..., key_id: _Optional[str] = ..., description: _Optional[str] = ..., provenance: _Optional[str] = ..., training_job_id: _Optional[str] = ..., personal_declared_by: _Optional[str] = ..., team: _Optional[str] = ..., attested: _Optional[bool] = ...) -> None: ...

class DeclareVersionPersonalDataRequest(_message.Message):
    __slots__ = ("name", "version", "personal", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    personal: bool
    reason: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., personal: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class GetAttestationRequest(_message.Message):
    __slots__ = ("name", "version", "alias", "with_proofs")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    WITH_PROOFS_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    alias: str
    with_proofs: bool
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., alias: _Optional[str] = ..., with_proofs: _Optional[bool] = ...) -> None: ...

class Attestation(_message.Message):
    __slots__ = ("envelope_json", "audit_seqs", "key_id", "document_json")
    ENVELOPE_JSON_FIELD_NUMBER: _ClassVar[int]
    AUDIT_SEQS_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_JSON_FIELD_NUMBER: _ClassVar[int]
    envelope_json: str
    audit_seqs: _containers.RepeatedScalarFieldContainer[int]
    key_id: str
    document_json: str
    def __init__(self, envelope_json: _Optional[str] = ..., audit_seqs: _Optional[_Iterable[int]] = ..., key_id: _Optional[str] = ..., document_json: _Optional[str] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("name", "owner", "created_at", "latest_version", "released_version", "team")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    RELEASED_VERSION_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    name: str
    owner: str
    created_at: _timestamp_pb2.Timestamp
    latest_version: int
    released_version: int
    team: str
    def __init__(self, name: _Optional[str] = ..., owner: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., latest_version: _Optional[int] = ..., released_version: _Optional[int] = ..., team: _Optional[str] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("page",)
    PAGE_FIELD_NUMBER: _ClassVar[int]
    page: _types_pb2.PageRequest
    def __init__(self, page: _Optional[_Union[_types_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "next_page_token")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    next_page_token: str
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetModelVersionRequest(_message.Message):
    __slots__ = ("name", "version", "alias")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    alias: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., alias: _Optional[str] = ...) -> None: ...

class ListModelVersionsRequest(_message.Message):
    __slots__ = ("name", "page")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    page: _types_pb2.PageRequest
    def __init__(self, name: _Optional[str] = ..., page: _Optional[_Union[_types_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListModelVersionsResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersion]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[ModelVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DownloadWeightsRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class WeightsChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class RequestReleaseRequest(_message.Message):
    __slots__ = ("name", "version", "metric_thresholds", "note")
    class MetricThresholdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    METRIC_THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    metric_thresholds: _containers.ScalarMap[str, float]
    note: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., metric_thresholds: _Optional[_Mapping[str, float]] = ..., note: _Optional[str] = ...) -> None: ...

class ApproveReleaseRequest(_message.Message):
    __slots__ = ("name", "version", "note")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    note: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., note: _Optional[str] = ...) -> None: ...

class ReleaseModelVersionRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class RevokeModelVersionRequest(_message.Message):
    __slots__ = ("name", "version", "erase", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ERASE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    erase: bool
    reason: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., erase: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class ListPendingReleasesRequest(_message.Message):
    __slots__ = ("page",)
    PAGE_FIELD_NUMBER: _ClassVar[int]
    page: _types_pb2.PageRequest
    def __init__(self, page: _Optional[_Union[_types_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class PendingRelease(_message.Message):
    __slots__ = ("model_name", "version", "stage", "requested_by", "requested_at", "trained_by", "approved_by", "waiting_for", "note")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    TRAINED_BY_FIELD_NUMBER: _ClassVar[int]
    APPROVED_BY_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: int
    stage: Stage
    requested_by: str
    requested_at: _timestamp_pb2.Timestamp
    trained_by: str
    approved_by: _containers.RepeatedScalarFieldContainer[str]
    waiting_for: str
    note: str
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[int] = ..., stage: _Optional[_Union[Stage, str]] = ..., requested_by: _Optional[str] = ..., requested_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trained_by: _Optional[str] = ..., approved_by: _Optional[_Iterable[str]] = ..., waiting_for: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ListPendingReleasesResponse(_message.Message):
    __slots__ = ("releases", "next_page_token")
    RELEASES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    releases: _containers.RepeatedCompositeFieldContainer[PendingRelease]
    next_page_token: str
    def __init__(self, releases: _Optional[_Iterable[_Union[PendingRelease, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetAliasRequest(_message.Message):
    __slots__ = ("name", "alias", "version", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    alias: str
    version: int
    reason: str
    def __init__(self, name: _Optional[str] = ..., alias: _Optional[str] = ..., version: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class RotateKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RotateKeysResponse(_message.Message):
    __slots__ = ("key_id", "rewrapped")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    REWRAPPED_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    rewrapped: int
    def __init__(self, key_id: _Optional[str] = ..., rewrapped: _Optional[int] = ...) -> None: ...

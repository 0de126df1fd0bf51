from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PageRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class DPGuarantee(_message.Message):
    __slots__ = ("epsilon", "delta", "noise_multiplier", "sample_rate", "steps", "accountant", "max_grad_norm", "privacy_unit", "target_epsilon", "neighbouring_relation", "sgd_epsilon", "sgd_delta", "releases")
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    NOISE_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTANT_FIELD_NUMBER: _ClassVar[int]
    MAX_GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_UNIT_FIELD_NUMBER: _ClassVar[int]
    TARGET_EPSILON_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOURING_RELATION_FIELD_NUMBER: _ClassVar[int]
    SGD_EPSILON_FIELD_NUMBER: _ClassVar[int]
    SGD_DELTA_FIELD_NUMBER: _ClassVar[int]
    RELEASES_FIELD_NUMBER: _ClassVar[int]
    epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    accountant: str
    max_grad_norm: float
    privacy_unit: str
    target_epsilon: float
    neighbouring_relation: str
    sgd_epsilon: float
    sgd_delta: float
    releases: _containers.RepeatedCompositeFieldContainer[DPRelease]
    def __init__(self, epsilon: _Optional[float] = ..., delta: _Optional[float] = ..., noise_multiplier: _Optional[float] = ..., sample_rate: _Optional[float] = ..., steps: _Optional[int] = ..., accountant: _Optional[str] = ..., max_grad_norm: _Optional[float] = ..., privacy_unit: _Optional[str] = ..., target_epsilon: _Optional[float] = ..., neighbouring_relation: _Optional[str] = ..., sgd_epsilon: _Optional[float] = ..., sgd_delta: _Optional[float] = ..., releases: _Optional[_Iterable[_Union[DPRelease, _Mapping]]] = ...) -> None: ...

class DPRelease(_message.Message):
    __slots__ = ("purpose", "mechanism", "epsilon", "delta")
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    MECHANISM_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    purpose: str
    mechanism: str
    epsilon: float
    delta: float
    def __init__(self, purpose: _Optional[str] = ..., mechanism: _Optional[str] = ..., epsilon: _Optional[float] = ..., delta: _Optional[float] = ...) -> None: ...

class Lineage(_message.Message):
    __slots__ = ("dataset_id", "dataset_digest", "training_job_id", "code_version", "trained_by", "raw_digest", "masking_profile_digest", "dataset_name", "masking_profile", "base_model", "base_version", "base_digest")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_DIGEST_FIELD_NUMBER: _ClassVar[int]
    TRAINING_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_VERSION_FIELD_NUMBER: _ClassVar[int]
    TRAINED_BY_FIELD_NUMBER: _ClassVar[int]
    RAW_DIGEST_FIELD_NUMBER: _ClassVar[int]
    MASKING_PROFILE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    DATASET_NAME_FIELD_NUMBER: _ClassVar[int]
    MASKING_PROFILE_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    BASE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    dataset_digest: str
    training_job_id: str
    code_version: str
    trained_by: str
    raw_digest: str
    masking_profile_digest: str
    dataset_name: str
    masking_profile: str
    base_model: str
    base_version: str
    base_digest: str
    def __init__(self, dataset_id: _Optional[str] = ..., dataset_digest: _Optional[str] = ..., training_job_id: _Optional[str] = ..., code_version: _Optional[str] = ..., trained_by: _Optional[str] = ..., raw_digest: _Optional[str] = ..., masking_profile_digest: _Optional[str] = ..., dataset_name: _Optional[str] = ..., masking_profile: _Optional[str] = ..., base_model: _Optional[str] = ..., base_version: _Optional[str] = ..., base_digest: _Optional[str] = ...) -> None: ...

class TensorSpec(_message.Message):
    __slots__ = ("name", "datatype", "shape")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATATYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    datatype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., datatype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class PrivacyBudget(_message.Message):
    __slots__ = ("epsilon_total", "delta", "epsilon_reserved", "epsilon_spent", "epsilon_remaining")
    EPSILON_TOTAL_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    EPSILON_RESERVED_FIELD_NUMBER: _ClassVar[int]
    EPSILON_SPENT_FIELD_NUMBER: _ClassVar[int]
    EPSILON_REMAINING_FIELD_NUMBER: _ClassVar[int]
    epsilon_total: float
    delta: float
    epsilon_reserved: float
    epsilon_spent: float
    epsilon_remaining: float
    def __init__(self, epsilon_total: _Optional[float] = ..., delta: _Optional[float] = ..., epsilon_reserved: _Optional[float] = ..., epsilon_spent: _Optional[float] = ..., epsilon_remaining: _Optional[float] = ...) -> None: ...

class LedgerEntry(_message.Message):
    __slots__ = ("kind", "job_id", "epsilon", "delta", "noise_multiplier", "sample_rate", "steps", "accountant", "principal", "time_us")
    KIND_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    NOISE_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTANT_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    TIME_US_FIELD_NUMBER: _ClassVar[int]
    kind: str
    job_id: str
    epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    accountant: str
    principal: str
    time_us: int
    def __init__(self, kind: _Optional[str] = ..., job_id: _Optional[str] = ..., epsilon: _Optional[float] = ..., delta: _Optional[float] = ..., noise_multiplier: _Optional[float] = ..., sample_rate: _Optional[float] = ..., steps: _Optional[int] = ..., accountant: _Optional[str] = ..., principal: _Optional[str] = ..., time_us: _Optional[int] = ...) -> None: ...

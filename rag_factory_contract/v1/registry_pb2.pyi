import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_FORMAT_UNSPECIFIED: _ClassVar[ModelFormat]
    MODEL_FORMAT_HUGGINGFACE: _ClassVar[ModelFormat]
    MODEL_FORMAT_SENTENCE_TRANSFORMERS: _ClassVar[ModelFormat]
    MODEL_FORMAT_PYTORCH: _ClassVar[ModelFormat]
    MODEL_FORMAT_ONNX: _ClassVar[ModelFormat]
MODEL_FORMAT_UNSPECIFIED: ModelFormat
MODEL_FORMAT_HUGGINGFACE: ModelFormat
MODEL_FORMAT_SENTENCE_TRANSFORMERS: ModelFormat
MODEL_FORMAT_PYTORCH: ModelFormat
MODEL_FORMAT_ONNX: ModelFormat

class ModelMetadata(_message.Message):
    __slots__ = ("model_id", "model_name", "version", "format", "embedding_dim", "max_seq_length", "base_model", "fine_tuned_on", "domain", "description", "created_by", "tags", "created_at")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQ_LENGTH_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    FINE_TUNED_ON_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    model_name: str
    version: str
    format: ModelFormat
    embedding_dim: int
    max_seq_length: int
    base_model: str
    fine_tuned_on: str
    domain: str
    description: str
    created_by: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, model_id: _Optional[str] = ..., model_name: _Optional[str] = ..., version: _Optional[str] = ..., format: _Optional[_Union[ModelFormat, str]] = ..., embedding_dim: _Optional[int] = ..., max_seq_length: _Optional[int] = ..., base_model: _Optional[str] = ..., fine_tuned_on: _Optional[str] = ..., domain: _Optional[str] = ..., description: _Optional[str] = ..., created_by: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ModelRecord(_message.Message):
    __slots__ = ("metadata", "metrics", "load_config", "artifact_sha256", "deprecated", "deprecation_reason", "registered_at", "aliases")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    METADATA_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    LOAD_CONFIG_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_SHA256_FIELD_NUMBER: _ClassVar[int]
    DEPRECATED_FIELD_NUMBER: _ClassVar[int]
    DEPRECATION_REASON_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    metadata: ModelMetadata
    metrics: _containers.ScalarMap[str, float]
    load_config: _struct_pb2.Struct
    artifact_sha256: str
    deprecated: bool
    deprecation_reason: str
    registered_at: _timestamp_pb2.Timestamp
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, metadata: _Optional[_Union[ModelMetadata, _Mapping]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., load_config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., artifact_sha256: _Optional[str] = ..., deprecated: _Optional[bool] = ..., deprecation_reason: _Optional[str] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class RegisterModelRequest(_message.Message):
    __slots__ = ("metadata", "artifact_path", "load_config", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_PATH_FIELD_NUMBER: _ClassVar[int]
    LOAD_CONFIG_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    metadata: ModelMetadata
    artifact_path: str
    load_config: _struct_pb2.Struct
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, metadata: _Optional[_Union[ModelMetadata, _Mapping]] = ..., artifact_path: _Optional[str] = ..., load_config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class RegisterModelResponse(_message.Message):
    __slots__ = ("record",)
    RECORD_FIELD_NUMBER: _ClassVar[int]
    record: ModelRecord
    def __init__(self, record: _Optional[_Union[ModelRecord, _Mapping]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("record",)
    RECORD_FIELD_NUMBER: _ClassVar[int]
    record: ModelRecord
    def __init__(self, record: _Optional[_Union[ModelRecord, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("domain", "format", "tags", "name", "text", "version_range", "exclude_deprecated")
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VERSION_RANGE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_DEPRECATED_FIELD_NUMBER: _ClassVar[int]
    domain: str
    format: ModelFormat
    tags: _containers.RepeatedScalarFieldContainer[str]
    name: str
    text: str
    version_range: str
    exclude_deprecated: bool
    def __init__(self, domain: _Optional[str] = ..., format: _Optional[_Union[ModelFormat, str]] = ..., tags: _Optional[_Iterable[str]] = ..., name: _Optional[str] = ..., text: _Optional[str] = ..., version_range: _Optional[str] = ..., exclude_deprecated: _Optional[bool] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[ModelRecord]
    def __init__(self, records: _Optional[_Iterable[_Union[ModelRecord, _Mapping]]] = ...) -> None: ...

class UpdateMetricsRequest(_message.Message):
    __slots__ = ("model_id", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, model_id: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class UpdateMetricsResponse(_message.Message):
    __slots__ = ("record",)
    RECORD_FIELD_NUMBER: _ClassVar[int]
    record: ModelRecord
    def __init__(self, record: _Optional[_Union[ModelRecord, _Mapping]] = ...) -> None: ...

class DeleteModelRequest(_message.Message):
    __slots__ = ("model_id",)
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    def __init__(self, model_id: _Optional[str] = ...) -> None: ...

class DeleteModelResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class SetAliasRequest(_message.Message):
    __slots__ = ("model_name", "alias", "target", "force")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    alias: str
    target: str
    force: bool
    def __init__(self, model_name: _Optional[str] = ..., alias: _Optional[str] = ..., target: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class SetAliasResponse(_message.Message):
    __slots__ = ("record",)
    RECORD_FIELD_NUMBER: _ClassVar[int]
    record: ModelRecord
    def __init__(self, record: _Optional[_Union[ModelRecord, _Mapping]] = ...) -> None: ...

class RollbackAliasRequest(_message.Message):
    __slots__ = ("model_name", "alias", "force")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    alias: str
    force: bool
    def __init__(self, model_name: _Optional[str] = ..., alias: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class RollbackAliasResponse(_message.Message):
    __slots__ = ("record",)
    RECORD_FIELD_NUMBER: _ClassVar[int]
    record: ModelRecord
    def __init__(self, record: _Optional[_Union[ModelRecord, _Mapping]] = ...) -> None: ...

class DeprecateModelRequest(_message.Message):
    __slots__ = ("model_id", "reason", "undo")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    UNDO_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    reason: str
    undo: bool
    def __init__(self, model_id: _Optional[str] = ..., reason: _Optional[str] = ..., undo: _Optional[bool] = ...) -> None: ...

class DeprecateModelResponse(_message.Message):
    __slots__ = ("record",)
    RECORD_FIELD_NUMBER: _ClassVar[int]
    record: ModelRecord
    def __init__(self, record: _Optional[_Union[ModelRecord, _Mapping]] = ...) -> None: ...

class CompareModelsRequest(_message.Message):
    __slots__ = ("model_a", "model_b")
    MODEL_A_FIELD_NUMBER: _ClassVar[int]
    MODEL_B_FIELD_NUMBER: _ClassVar[int]
    model_a: str
    model_b: str
    def __init__(self, model_a: _Optional[str] = ..., model_b: _Optional[str] = ...) -> None: ...

class FieldDifference(_message.Message):
    __slots__ = ("field", "a", "b")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    field: str
    a: str
    b: str
    def __init__(self, field: _Optional[str] = ..., a: _Optional[str] = ..., b: _Optional[str] = ...) -> None: ...

class MetricDifference(_message.Message):
    __slots__ = ("name", "a", "b", "delta")
    NAME_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    name: str
    a: float
    b: float
    delta: float
    def __init__(self, name: _Optional[str] = ..., a: _Optional[float] = ..., b: _Optional[float] = ..., delta: _Optional[float] = ...) -> None: ...

class CompareModelsResponse(_message.Message):
    __slots__ = ("model_a", "model_b", "metadata_differences", "metrics")
    MODEL_A_FIELD_NUMBER: _ClassVar[int]
    MODEL_B_FIELD_NUMBER: _ClassVar[int]
    METADATA_DIFFERENCES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    model_a: str
    model_b: str
    metadata_differences: _containers.RepeatedCompositeFieldContainer[FieldDifference]
    metrics: _containers.RepeatedCompositeFieldContainer[MetricDifference]
    def __init__(self, model_a: _Optional[str] = ..., model_b: _Optional[str] = ..., metadata_differences: _Optional[_Iterable[_Union[FieldDifference, _Mapping]]] = ..., metrics: _Optional[_Iterable[_Union[MetricDifference, _Mapping]]] = ...) -> None: ...

class GetLineageRequest(_message.Message):
    __slots__ = ("model_id",)
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    def __init__(self, model_id: _Optional[str] = ...) -> None: ...

class GetLineageResponse(_message.Message):
    __slots__ = ("ancestors", "descendants")
    ANCESTORS_FIELD_NUMBER: _ClassVar[int]
    DESCENDANTS_FIELD_NUMBER: _ClassVar[int]
    ancestors: _containers.RepeatedScalarFieldContainer[str]
    descendants: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ancestors: _Optional[_Iterable[str]] = ..., descendants: _Optional[_Iterable[str]] = ...) -> None: ...

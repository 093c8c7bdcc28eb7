from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReadinessState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    READINESS_STATE_UNSPECIFIED: _ClassVar[ReadinessState]
    READINESS_STATE_NOT_LOADED: _ClassVar[ReadinessState]
    READINESS_STATE_LOADING: _ClassVar[ReadinessState]
    READINESS_STATE_READY: _ClassVar[ReadinessState]
    READINESS_STATE_FAILED: _ClassVar[ReadinessState]
READINESS_STATE_UNSPECIFIED: ReadinessState
READINESS_STATE_NOT_LOADED: ReadinessState
READINESS_STATE_LOADING: ReadinessState
READINESS_STATE_READY: ReadinessState
READINESS_STATE_FAILED: ReadinessState

class Limits(_message.Message):
    __slots__ = ("max_batch_texts", "max_text_chars", "max_message_bytes")
    MAX_BATCH_TEXTS_FIELD_NUMBER: _ClassVar[int]
    MAX_TEXT_CHARS_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    max_batch_texts: int
    max_text_chars: int
    max_message_bytes: int
    def __init__(self, max_batch_texts: _Optional[int] = ..., max_text_chars: _Optional[int] = ..., max_message_bytes: _Optional[int] = ...) -> None: ...

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetServerInfoResponse(_message.Message):
    __slots__ = ("server_version", "default_model", "limits", "ab_testing_enabled")
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    AB_TESTING_ENABLED_FIELD_NUMBER: _ClassVar[int]
    server_version: str
    default_model: str
    limits: Limits
    ab_testing_enabled: bool
    def __init__(self, server_version: _Optional[str] = ..., default_model: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., ab_testing_enabled: _Optional[bool] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model_id", "model_name", "version", "embedding_dimension", "max_seq_length", "format", "deprecated", "loaded", "backend", "precision")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIMENSION_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQ_LENGTH_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    DEPRECATED_FIELD_NUMBER: _ClassVar[int]
    LOADED_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    model_name: str
    version: str
    embedding_dimension: int
    max_seq_length: int
    format: str
    deprecated: bool
    loaded: bool
    backend: str
    precision: str
    def __init__(self, model_id: _Optional[str] = ..., model_name: _Optional[str] = ..., version: _Optional[str] = ..., embedding_dimension: _Optional[int] = ..., max_seq_length: _Optional[int] = ..., format: _Optional[str] = ..., deprecated: _Optional[bool] = ..., loaded: _Optional[bool] = ..., backend: _Optional[str] = ..., precision: _Optional[str] = ...) -> None: ...

class GetModelInfoResponse(_message.Message):
    __slots__ = ("info",)
    INFO_FIELD_NUMBER: _ClassVar[int]
    info: ModelInfo
    def __init__(self, info: _Optional[_Union[ModelInfo, _Mapping]] = ...) -> None: ...

class GetModelReadinessRequest(_message.Message):
    __slots__ = ("model", "load")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    model: str
    load: bool
    def __init__(self, model: _Optional[str] = ..., load: _Optional[bool] = ...) -> None: ...

class GetModelReadinessResponse(_message.Message):
    __slots__ = ("model_id", "state", "message")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    state: ReadinessState
    message: str
    def __init__(self, model_id: _Optional[str] = ..., state: _Optional[_Union[ReadinessState, str]] = ..., message: _Optional[str] = ...) -> None: ...

class ListLoadedModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListLoadedModelsResponse(_message.Message):
    __slots__ = ("models", "cache_used_bytes", "cache_budget_bytes")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    CACHE_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    CACHE_BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    cache_used_bytes: int
    cache_budget_bytes: int
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., cache_used_bytes: _Optional[int] = ..., cache_budget_bytes: _Optional[int] = ...) -> None: ...

from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Variant(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VARIANT_UNSPECIFIED: _ClassVar[Variant]
    VARIANT_CONTROL: _ClassVar[Variant]
    VARIANT_CANDIDATE: _ClassVar[Variant]
VARIANT_UNSPECIFIED: Variant
VARIANT_CONTROL: Variant
VARIANT_CANDIDATE: Variant

class ServedBy(_message.Message):
    __slots__ = ("model_id", "model_name", "version", "variant", "experiment", "fallback", "fallback_reason", "requested_model", "backend", "precision")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_MODEL_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    model_name: str
    version: str
    variant: Variant
    experiment: str
    fallback: bool
    fallback_reason: str
    requested_model: str
    backend: str
    precision: str
    def __init__(self, model_id: _Optional[str] = ..., model_name: _Optional[str] = ..., version: _Optional[str] = ..., variant: _Optional[_Union[Variant, str]] = ..., experiment: _Optional[str] = ..., fallback: _Optional[bool] = ..., fallback_reason: _Optional[str] = ..., requested_model: _Optional[str] = ..., backend: _Optional[str] = ..., precision: _Optional[str] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("queue_ms", "inference_ms", "total_ms", "batch_texts")
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    BATCH_TEXTS_FIELD_NUMBER: _ClassVar[int]
    queue_ms: float
    inference_ms: float
    total_ms: float
    batch_texts: int
    def __init__(self, queue_ms: _Optional[float] = ..., inference_ms: _Optional[float] = ..., total_ms: _Optional[float] = ..., batch_texts: _Optional[int] = ...) -> None: ...

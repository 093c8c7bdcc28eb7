from . import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VectorEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VECTOR_ENCODING_UNSPECIFIED: _ClassVar[VectorEncoding]
    VECTOR_ENCODING_REPEATED_FLOAT: _ClassVar[VectorEncoding]
    VECTOR_ENCODING_PACKED_FLOAT32: _ClassVar[VectorEncoding]
VECTOR_ENCODING_UNSPECIFIED: VectorEncoding
VECTOR_ENCODING_REPEATED_FLOAT: VectorEncoding
VECTOR_ENCODING_PACKED_FLOAT32: VectorEncoding

class EmbedRequest(_message.Message):
    __slots__ = ("texts", "model", "routing_key", "encoding", "domain", "request_id", "allow_fallback", "dimensions")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ROUTING_KEY_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ALLOW_FALLBACK_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    model: str
    routing_key: str
    encoding: VectorEncoding
    domain: str
    request_id: str
    allow_fallback: bool
    dimensions: int
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ..., routing_key: _Optional[str] = ..., encoding: _Optional[_Union[VectorEncoding, str]] = ..., domain: _Optional[str] = ..., request_id: _Optional[str] = ..., allow_fallback: _Optional[bool] = ..., dimensions: _Optional[int] = ...) -> None: ...

class Vector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("vectors", "packed", "count", "dimension", "encoding", "served_by", "timings", "request_id")
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SERVED_BY_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    vectors: _containers.RepeatedCompositeFieldContainer[Vector]
    packed: bytes
    count: int
    dimension: int
    encoding: VectorEncoding
    served_by: _common_pb2.ServedBy
    timings: _common_pb2.Timings
    request_id: str
    def __init__(self, vectors: _Optional[_Iterable[_Union[Vector, _Mapping]]] = ..., packed: _Optional[bytes] = ..., count: _Optional[int] = ..., dimension: _Optional[int] = ..., encoding: _Optional[_Union[VectorEncoding, str]] = ..., served_by: _Optional[_Union[_common_pb2.ServedBy, _Mapping]] = ..., timings: _Optional[_Union[_common_pb2.Timings, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class EmbedStreamRequest(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: EmbedRequest
    def __init__(self, request: _Optional[_Union[EmbedRequest, _Mapping]] = ...) -> None: ...

class EmbedStreamResponse(_message.Message):
    __slots__ = ("response",)
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    response: EmbedResponse
    def __init__(self, response: _Optional[_Union[EmbedResponse, _Mapping]] = ...) -> None: ...

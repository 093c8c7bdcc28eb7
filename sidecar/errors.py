"""The core error tree to gRPC statuses: the one map, the decorator that applies it, undecodable requests."""

from __future__ import annotations

import functools
import inspect
import logging
import traceback
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2, message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from rag_factory.errors import InvalidArgumentError, RagFactoryError, StatusName, quoted

logger = logging.getLogger(__name__)

ERROR_DOMAIN = "rag-factory"
# Bounds of what one error sends, in UTF-8 bytes. The message travels twice, percent-encoded in
# grpc-message (up to 3 bytes per byte) and base64-encoded in grpc-status-details-bin; clients refuse
# trailers over 8 KiB (grpc.max_metadata_size), answering RESOURCE_EXHAUSTED instead of our status.
MAX_MESSAGE_BYTES = 1024
MAX_METADATA_VALUE_BYTES = 128
MAX_METADATA_ENTRIES = 8

# Every StatusName the core may use; a test checks that every error class lands on one of these.
STATUS_CODES: dict[StatusName, grpc.StatusCode] = {
    "INTERNAL": grpc.StatusCode.INTERNAL,
    "INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT,
    "NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "ALREADY_EXISTS": grpc.StatusCode.ALREADY_EXISTS,
    "FAILED_PRECONDITION": grpc.StatusCode.FAILED_PRECONDITION,
    "PERMISSION_DENIED": grpc.StatusCode.PERMISSION_DENIED,
    "DATA_LOSS": grpc.StatusCode.DATA_LOSS,
    "UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "RESOURCE_EXHAUSTED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "DEADLINE_EXCEEDED": grpc.StatusCode.DEADLINE_EXCEEDED,
}


def status_for(exc: BaseException) -> status_pb2.Status:
    """The rich ``google.rpc.Status`` (with ``ErrorInfo``) for an exception.

    Our errors keep their message and reason; anything else becomes INTERNAL with a generic message
    (the traceback is logged on the server, never sent).
    """
    if isinstance(exc, RagFactoryError):
        code, message, reason, metadata = STATUS_CODES[exc.code], exc.message, exc.reason, exc.metadata
    else:
        # The traceback without the exception's own text, which may quote a client's input at any length.
        logger.error(
            "unexpected error while serving a request: %s: %s\n%s",
            type(exc).__name__,
            quoted(str(exc), 500),
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        code, message, reason, metadata = grpc.StatusCode.INTERNAL, "internal error; see the server log", "INTERNAL", {}
    # A safety net under the messages themselves, which quote client input briefly: a message or a
    # metadata value that echoed 20,000 characters would make the trailers too big to deliver.
    bounded = {
        _clipped(str(key), 32): _clipped(str(value), MAX_METADATA_VALUE_BYTES)
        for key, value in list(metadata.items())[:MAX_METADATA_ENTRIES]
    }
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=bounded))
    return status_pb2.Status(
        code=getattr(code_pb2, code.name), message=_clipped(str(message), MAX_MESSAGE_BYTES), details=[info]
    )


def _clipped(text: str, limit: int) -> str:
    """``text`` as at most ``limit`` bytes of UTF-8, ending in "…" where it was cut.

    Lone surrogates (from a file name that was not UTF-8) become "?": protobuf refuses to send them.
    """
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data.decode("utf-8")
    return data[: limit - 3].decode("utf-8", "ignore") + "…"  # "ignore" drops a character cut in half


F = TypeVar("F", bound=Callable[..., Any])


def translate_errors(method: F) -> F:
    """Wrap a servicer method (unary or server-streaming) so errors abort with their mapped status."""
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def stream_wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            try:
                yield from method(self, request, context)
            except Exception as exc:
                context.abort_with_status(rpc_status.to_status(status_for(exc)))

        return stream_wrapper  # type: ignore[return-value]

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as exc:
            context.abort_with_status(rpc_status.to_status(status_for(exc)))

    return wrapper  # type: ignore[return-value]


def translate_all(cls: type) -> type:
    """Class decorator: apply :func:`translate_errors` to every public RPC method of a servicer."""
    for name, member in list(vars(cls).items()):
        if callable(member) and name[:1].isupper():
            setattr(cls, name, translate_errors(member))
    return cls


class _Undecodable:
    """Handed on by the lenient deserializer in place of a request protobuf could not decode."""

    def __init__(self, problem: str) -> None:
        self.problem = problem

    def error(self) -> InvalidArgumentError:
        return InvalidArgumentError(
            f"the request could not be decoded ({self.problem[:200]}); string fields must be valid UTF-8 and "
            "the message whole"
        )


def _lenient(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # DecodeError above all: the bytes are the client's, so is the mistake
            return _Undecodable(str(exc) if isinstance(exc, message.DecodeError) else type(exc).__name__)

    return parse


def _abort_undecodable(request: Any, context: grpc.ServicerContext) -> None:
    if isinstance(request, _Undecodable):
        context.abort_with_status(rpc_status.to_status(status_for(request.error())))


def _checked_unary(behavior: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[[Any, grpc.ServicerContext], Any]:
    def checked(request: Any, context: grpc.ServicerContext) -> Any:
        _abort_undecodable(request, context)
        return behavior(request, context)

    return checked


def _checked_stream(behavior: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[[Any, grpc.ServicerContext], Any]:
    def checked(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        return behavior(_decoded(requests, context), context)

    return checked


def _decoded(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
    for request in requests:
        if isinstance(request, _Undecodable):
            error = request.error()
            # The status is set before raising: a consumer that swallows the error (a reader thread)
            # still ends the call with it; a servicer that lets it through aborts with the same status.
            status = rpc_status.to_status(status_for(error))
            context.set_code(status.code)
            context.set_details(status.details)
            context.set_trailing_metadata(status.trailing_metadata)
            raise error
        yield request


class UndecodableRequests(grpc.ServerInterceptor):
    """Answer INVALID_ARGUMENT to a request that protobuf cannot decode, where gRPC answers INTERNAL.

    protobuf refuses a message whose string field holds invalid UTF-8 (or bytes that are no message
    at all); gRPC then ends the call with INTERNAL "Exception deserializing request!", as if the
    server were broken. This interceptor gives the handler a deserializer that hands such requests on
    marked, and answers them with INVALID_ARGUMENT before the servicer sees them. Install it last, so
    it sits next to the servicers: it must see the handler the servicer is registered with, and an
    outer interceptor that reads request streams in its own thread then sees the error too.
    """

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        lenient = _lenient(handler.request_deserializer)
        if handler.request_streaming:
            kind = "stream_stream" if handler.response_streaming else "stream_unary"
            behavior = _checked_stream(getattr(handler, kind))
        else:
            kind = "unary_stream" if handler.response_streaming else "unary_unary"
            behavior = _checked_unary(getattr(handler, kind))
        return handler._replace(request_deserializer=lenient, **{kind: behavior})  # type: ignore[attr-defined, no-any-return]

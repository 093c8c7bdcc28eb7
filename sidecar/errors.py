"""The one map from the core error tree to gRPC status codes, and the decorator that applies it."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from rag_factory.errors import RagFactoryError, StatusName

logger = logging.getLogger(__name__)

ERROR_DOMAIN = "rag-factory"

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
        logger.exception("unexpected error while serving a request", exc_info=exc)
        code, message, reason, metadata = grpc.StatusCode.INTERNAL, "internal error; see the server log", "INTERNAL", {}
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata))
    return status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=[info])


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

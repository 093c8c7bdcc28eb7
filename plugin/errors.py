"""Turn a failed gRPC call back into the core ``RagFactoryError`` it started as on the sidecar.

The sidecar sends each error as a ``google.rpc.Status`` whose ``ErrorInfo.reason`` names the core class.
The client picks, in order:

1. the class whose ``reason`` matches the ``ErrorInfo`` (domain ``rag-factory``);
2. otherwise the class that introduces the status code in the tree (``NOT_FOUND`` -> ``NotFoundError``);
3. otherwise ``RagFactoryError``.

Transport failures have no ``ErrorInfo``: an unreachable sidecar surfaces as ``UnavailableError`` naming
the address, and a deadline that passed as ``DeadlineExceededError``.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from rag_factory.errors import DeadlineExceededError, RagFactoryError, UnavailableError, all_error_classes

# Must match sidecar.errors.ERROR_DOMAIN; a reason from any other domain is not ours to interpret.
ERROR_DOMAIN = "rag-factory"

_CLASS_BY_REASON: dict[str, type[RagFactoryError]] = {cls.reason: cls for cls in all_error_classes()}


def _class_for_code(code_name: str) -> type[RagFactoryError]:
    # The class that introduces a code (its parent maps elsewhere) is the most specific class that is
    # certainly right: picking a leaf such as UnknownFormatError for any INVALID_ARGUMENT would lie.
    for cls in all_error_classes():
        parent = cls.__mro__[1]
        introduces = not issubclass(parent, RagFactoryError) or parent.code != cls.code
        if cls.code == code_name and introduces:
            return cls
    return RagFactoryError


def _is_call(exc: grpc.RpcError) -> bool:
    # Sync errors are grpc.Call objects; grpc.aio's AioRpcError has the same methods without the base class.
    return all(hasattr(exc, name) for name in ("code", "details", "trailing_metadata"))


def _rich_status(exc: grpc.RpcError) -> status_pb2.Status | None:
    if not _is_call(exc):
        return None
    try:
        status: status_pb2.Status | None = rpc_status.from_call(exc)
        return status
    except ValueError:
        # The trailer disagrees with the status line (a proxy rewrote one of them): trust neither detail.
        return None


def _error_info(status: status_pb2.Status | None) -> error_details_pb2.ErrorInfo | None:
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.domain in ("", ERROR_DOMAIN):
                return info
    return None


def error_from_rpc(exc: grpc.RpcError, *, address: str = "") -> RagFactoryError:
    """The core error a failed call stands for, keeping the server's message.

    The caller raises it ``from exc`` so the gRPC error stays in the traceback.

    Args:
        exc: The error raised by a sync or ``grpc.aio`` call.
        address: The sidecar's address, named in connection errors.

    Returns:
        An instance of the matching ``RagFactoryError`` subclass.
    """
    call: Any = exc if _is_call(exc) else None
    code: grpc.StatusCode | None = call.code() if call is not None else None
    message: str = (call.details() if call is not None else None) or str(exc)
    where = f" at {address}" if address else ""
    info = _error_info(_rich_status(exc))
    if info is not None and info.reason in _CLASS_BY_REASON:
        return _CLASS_BY_REASON[info.reason](message, **dict(info.metadata))
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        # Usually the client's own deadline, enforced locally, so there is no ErrorInfo to read.
        return DeadlineExceededError(
            f"the rag-factory sidecar{where} did not answer before the deadline; raise timeout_s or retry later"
        )
    if code is grpc.StatusCode.UNAVAILABLE:
        # No ErrorInfo: the transport failed before reaching a servicer (nothing listens, TLS mismatch, ...).
        return UnavailableError(
            f"cannot reach the rag-factory sidecar{where}: {message}; is `rag-factory serve` running there?"
        )
    if code is None:
        return RagFactoryError(message)
    return _class_for_code(code.name)(message)

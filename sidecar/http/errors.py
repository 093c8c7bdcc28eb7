"""Errors of the HTTP API: the one gRPC map read once more, as HTTP statuses in the OpenAI error shape.

A core error becomes its ``google.rpc.Status`` through ``sidecar.errors.status_for`` (the map gRPC uses,
with its bounded message, its ``ErrorInfo`` reason and its logging of unexpected errors), and that gRPC
code becomes an HTTP status through :data:`HTTP_STATUSES`, the usual gRPC-to-HTTP table. So HTTP and gRPC
cannot drift apart: moving an error class to another gRPC code moves its HTTP status with it.

The body is the one OpenAI clients parse, ``{"error": {"message", "type", "param", "code"}}``, with our
``ErrorInfo`` reason as ``code`` (``MODEL_NOT_FOUND``, ``INVALID_ARGUMENT``, ...), and two fields OpenAI
clients ignore: ``status`` (the gRPC status name) and ``metadata`` (the ``ErrorInfo`` metadata).
"""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2

from sidecar.errors import ERROR_DOMAIN, status_for

# gRPC code -> HTTP status, as google.rpc.Code documents it, except FAILED_PRECONDITION: 409 (the request
# conflicts with the state of what it names, such as a deprecated version) where Google says 400, so that
# clients can tell it from a malformed request.
HTTP_STATUSES: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}

# The OpenAI error "type" of each HTTP status; anything else is a server error.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
# Seconds a client should wait before retrying a refusal for overload (429), sent as Retry-After.
RETRY_AFTER_S = 1


class HTTPProblem(Exception):
    """An error of the HTTP layer itself (a body that is no JSON, a wrong token, an unknown path).

    Errors of the core never use it: they keep their own class, and so their gRPC code and reason.

    Args:
        status: The HTTP status.
        reason: The ``code`` of the body, in the style of ``ErrorInfo`` reasons.
        message: What went wrong and what to do.
        param: The request field at fault, if one is.
        headers: Extra response headers (``Allow``, ``WWW-Authenticate``).
    """

    def __init__(
        self, status: int, reason: str, message: str, *, param: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.param = param
        self.headers = headers or {}


def error_body(http_status: int, reason: str, message: str, param: str | None = None, **extra: Any) -> dict[str, Any]:
    """The OpenAI error shape (``extra`` adds fields that OpenAI clients ignore)."""
    kind = _TYPES.get(http_status, "server_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": reason, **extra}}


def describe(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The HTTP status, body and headers that answer ``exc``.

    An error that is not ours becomes 500 INTERNAL with a generic message; its traceback is logged on the
    server (by ``status_for``), never sent.
    """
    if isinstance(exc, HTTPProblem):
        status, headers = exc.status, dict(exc.headers)
        body = error_body(status, exc.reason, exc.message, exc.param)
    else:
        rpc = status_for(exc)
        code = _BY_NUMBER.get(rpc.code, grpc.StatusCode.INTERNAL)
        info = error_details_pb2.ErrorInfo()
        if rpc.details and rpc.details[0].Unpack(info) and info.domain == ERROR_DOMAIN:
            reason, metadata = info.reason, dict(info.metadata)
        else:  # pragma: no cover - status_for always packs our ErrorInfo
            reason, metadata = code.name, {}
        status, headers = HTTP_STATUSES[code], {}
        param = _param_of(reason, rpc.message)
        body = error_body(status, reason, rpc.message, param, status=code.name, metadata=metadata)
    if status == 429:
        headers["retry-after"] = str(RETRY_AFTER_S)
    elif 400 <= status < 500:
        # The openai client retries 409 (and 408, 429, 5xx) unless told not to; this request would fail again.
        headers["x-should-retry"] = "false"
    return status, body, headers


# The request field each core message or reason points at, in the OpenAI request's own names: the core
# speaks of "texts" and "routing_key", which the HTTP request calls "input" and "user".
_PARAM_BY_PREFIX = (("texts", "input"), ("routing_key", "user"), ("dimensions", "dimensions"), ("model", "model"))
_MODEL_REASONS = frozenset({"MODEL_NOT_FOUND", "ALIAS_NOT_FOUND", "MODEL_DEPRECATED"})


def _param_of(reason: str, message: str) -> str | None:
    if reason in _MODEL_REASONS:
        return "model"
    for prefix, param in _PARAM_BY_PREFIX:
        if message.startswith(prefix):
            return param
    if message[:1].isdigit() and " texts exceed" in message:  # "300 texts exceed the limit of 256 per request"
        return "input"
    return None

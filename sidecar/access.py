"""Who may call what: bearer tokens mapped to two roles, checked before any servicer runs.

The ``client`` role embeds and reads (what an application needs at query time, including recording A/B
outcomes); the ``admin`` role may also change what is served (registry writes, aliases, experiments, jobs,
evaluations). Health stays open so that load balancers and Kubernetes probes, which send no metadata, can
probe the server; it reveals one status per service and nothing else. docs/security.md is the prose of this
table.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Callable, Mapping
from typing import Any

import grpc

from rag_factory_contract.v1 import (
    ab_pb2,
    embedding_pb2,
    evaluation_pb2,
    model_pb2,
    registry_pb2,
    training_pb2,
)


class Role(enum.IntEnum):
    """Roles in increasing power: each may do what the ones below it may."""

    CLIENT = 1
    ADMIN = 2


# Calls that change what is served, read server files or start heavy work. Every other RPC of our six
# services needs the client role; a test checks that each RPC of the contract is in one of the two sets.
ADMIN_RPCS: Mapping[str, frozenset[str]] = {
    "RegistryService": frozenset(
        {"RegisterModel", "UpdateMetrics", "DeleteModel", "SetAlias", "RollbackAlias", "DeprecateModel"}
    ),
    "ABTestService": frozenset({"StartExperiment", "RampExperiment", "StopExperiment", "RollbackExperiment"}),
    "TrainingService": frozenset({"StartJob", "CancelJob"}),
    "EvaluationService": frozenset({"Evaluate", "CompareRetrieval"}),
}

_FILES = (ab_pb2, embedding_pb2, evaluation_pb2, model_pb2, registry_pb2, training_pb2)

# Open to anyone: load balancers and probes cannot send tokens.
_OPEN_PREFIXES = ("/grpc.health.v1.Health/",)


def rpc_roles() -> dict[str, Role]:
    """The role each RPC of the contract needs, by full method path (``/package.Service/Method``)."""
    roles: dict[str, Role] = {}
    for file in _FILES:
        for service in file.DESCRIPTOR.services_by_name.values():
            admin = ADMIN_RPCS.get(service.name, frozenset())
            for method in service.methods:
                roles[f"/{service.full_name}/{method.name}"] = Role.ADMIN if method.name in admin else Role.CLIENT
    return roles


def _denied(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that refuses the call before reading any message.

    The shape matters: a unary refusal answering a streaming call made gRPC report UNIMPLEMENTED instead of
    UNAUTHENTICATED (issue 18, item 9).
    """

    def refuse(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)


class TokenAccess(grpc.ServerInterceptor):
    """Require ``authorization: Bearer <token>``; the token decides the role.

    Args:
        admin_token: Grants every call. None: no one is admin over the network.
        client_token: Grants embedding and read calls. None: only the admin token is accepted.
    """

    def __init__(self, admin_token: str | None, client_token: str | None) -> None:
        self._tokens: list[tuple[bytes, Role]] = [
            (f"Bearer {token}".encode(), role)
            for token, role in ((admin_token, Role.ADMIN), (client_token, Role.CLIENT))
            if token
        ]
        self._roles = rpc_roles()

    def role_of(self, authorization: str | None) -> Role | None:
        """The role a header value grants, or None (compared in constant time)."""
        if authorization is None:
            return None
        presented = authorization.encode()
        granted = None
        for expected, role in self._tokens:
            if hmac.compare_digest(presented, expected):
                granted = role
        return granted

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or method.startswith(_OPEN_PREFIXES):
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())  # type: ignore[attr-defined]
        role = self.role_of(metadata.get("authorization"))
        if role is None:
            return _denied(handler, grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token in 'authorization'")
        needed = self._roles.get(method, Role.CLIENT)
        if role < needed:
            return _denied(
                handler,
                grpc.StatusCode.PERMISSION_DENIED,
                f"{method.rsplit('/', 1)[-1]} changes what is served: it needs the admin token",
            )
        return handler

"""The HTTP API over the sidecar's engine: OpenAI embeddings, models, probes, server info and metrics.

Each endpoint is thin, like a gRPC servicer: check the token, read the request, call the core in a worker
thread (engine calls block, the event loop never does), convert the result. Errors of every kind leave
through :func:`sidecar.http.errors.describe`, in the OpenAI error shape.

===========================  ======  ================================================================
path                         token   answers
===========================  ======  ================================================================
``POST /v1/embeddings``      client  OpenAI embeddings; the served model in headers and ``rag_factory``
``GET /v1/models``           client  the default model, aliases and model ids that can be asked for
``GET /info``                client  server version, default model, loaded models, limits, A/B
``GET /metrics``             client  Prometheus text of the server's metrics
``GET /health``              open    200 while the process runs (liveness)
``GET /ready``               open    200 while the default model serves, else 503 with the reason
===========================  ======  ================================================================
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rag_factory.errors import ResourceExhaustedError
from rag_factory.models.embedding.records import ModelRecord
from rag_factory.serving.engine import Cancellation, EmbeddingEngine
from rag_factory_contract.v1 import embedding_pb2
from sidecar import convert
from sidecar.access import TokenAccess
from sidecar.health import SERVING, HealthService, ReadinessMonitor
from sidecar.http.errors import HTTPProblem, describe, error_body
from sidecar.http.schemas import (
    embed_request,
    embeddings_response,
    flag_from_header,
    parse_embeddings_request,
    render,
    served_headers,
    timeout_from_header,
)

# The deadline of a request that sends no x-rag-factory-timeout-s (OpenAI clients send none): its work is
# dropped from the model's queue when it passes, as for a gRPC call with this deadline.
DEFAULT_TIMEOUT_S = 30.0
# /v1/models lists at most this many references, so that its answer stays small on a large registry.
MAX_LISTED_MODELS = 1000

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class HTTPLimits:
    """What one HTTP server admits."""

    max_body_bytes: int  # larger bodies answer 413, checked while reading
    max_in_flight: int  # embedding requests running or waiting for a worker thread; more answer 429
    default_timeout_s: float = DEFAULT_TIMEOUT_S


class HTTPApi:
    """The endpoints of one sidecar's HTTP server.

    Args:
        engine: The engine the gRPC servicers use.
        health: The gRPC health statuses; ``/ready`` reports the overall one ("").
        readiness: The monitor that keeps health true to the default model (its reason is reported).
        metrics_registry: Prometheus registry served on ``/metrics``.
        access: Checks bearer tokens (None: no tokens are configured, every caller is let in).
        executor: Worker threads for engine and registry calls.
        limits: Body size, concurrency and the default deadline.
        server_version: Reported by ``/info``.
        ab_testing_enabled: Reported by ``/info``.
    """

    def __init__(
        self,
        engine: EmbeddingEngine,
        *,
        health: HealthService,
        readiness: ReadinessMonitor,
        metrics_registry: CollectorRegistry,
        access: TokenAccess | None,
        executor: Executor,
        limits: HTTPLimits,
        server_version: str,
        ab_testing_enabled: bool,
    ) -> None:
        self._engine = engine
        self._health = health
        self._readiness = readiness
        self._metrics_registry = metrics_registry
        self._access = access
        self._executor = executor
        self._limits = limits
        self._server_version = server_version
        self._ab_enabled = ab_testing_enabled
        self._in_flight = 0  # only touched on the event loop's thread

    def app(self) -> Starlette:
        """The ASGI application."""
        app = Starlette(
            routes=[
                Route("/v1/embeddings", _answering(self.embeddings), methods=["POST"]),
                Route("/v1/models", _answering(self.models), methods=["GET"]),
                Route("/info", _answering(self.info), methods=["GET"]),
                Route("/metrics", _answering(self.metrics), methods=["GET"]),
                Route("/health", _answering(self.health), methods=["GET"]),
                Route("/ready", _answering(self.ready), methods=["GET"]),
            ],
            exception_handlers={HTTPException: _routing_error},
        )
        app.router.redirect_slashes = False  # /health/ is an unknown path (404), not a redirect to /health
        return app

    # -- endpoints ----------------------------------------------------------------------------------

    async def embeddings(self, request: Request) -> Response:
        """``POST /v1/embeddings``: embed ``input`` with ``model`` (OpenAI format)."""
        self._authorize(request)
        arrived = time.monotonic()
        if self._in_flight >= self._limits.max_in_flight:
            # Refused at once, before the body is read, as gRPC refuses calls beyond max_concurrent_rpcs.
            raise ResourceExhaustedError(
                f"{self._in_flight} HTTP embedding requests are in progress, the most this server admits; "
                "retry with backoff",
                cause="too_many_requests",
            )
        self._in_flight += 1
        try:
            body = await self._read_body(request)
            parsed = parse_embeddings_request(body)
            headers = request.headers
            timeout_s = timeout_from_header(headers.get("x-rag-factory-timeout-s"), self._limits.default_timeout_s)
            fallback = flag_from_header(headers.get("x-rag-factory-allow-fallback"), "x-rag-factory-allow-fallback")
            message = embed_request(parsed, request_id=headers.get("x-request-id", ""), allow_fallback=fallback)
            cancellation = Cancellation()
            watcher = asyncio.ensure_future(_cancel_when_disconnected(request, cancellation))
            try:
                body, served = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self._embed, message, parsed.encoding_format, arrived + timeout_s, cancellation
                )
            finally:
                watcher.cancel()
        finally:
            self._in_flight -= 1
        return Response(body, media_type="application/json", headers=served)

    def _embed(
        self, message: embedding_pb2.EmbedRequest, encoding_format: str, deadline: float, cancellation: Cancellation
    ) -> tuple[bytes, dict[str, str]]:
        # In the worker thread: the time spent waiting for it counts against the deadline, as in gRPC, and
        # the JSON of a large batch (tens of milliseconds) is rendered here, not on the event loop.
        call = convert.embed_call(message, deadline - time.monotonic())
        outcome = self._engine.embed(call, cancellation=cancellation)
        return render(embeddings_response(outcome, encoding_format)), served_headers(outcome)

    async def models(self, request: Request) -> Response:
        """``GET /v1/models``: what ``model`` may name, in the OpenAI list shape."""
        self._authorize(request)
        data = await self._in_thread(self._list_models)
        return JSONResponse({"object": "list", "data": data})

    def _list_models(self) -> list[dict[str, Any]]:
        registry = self._engine.registry
        records = registry.list_records(include_deprecated=False)
        by_id = {record.model_id: record for record in records}
        listed: list[dict[str, Any]] = []
        try:
            default = registry.resolve(self._engine.default_model)
        except Exception:  # not ready: /ready says why; the other references are still listed
            default = None
        if default is not None:
            listed.append(_model_entry("default", default))
        for name in sorted({record.metadata.model_name for record in records}):
            for alias, model_id in sorted(registry.aliases(name).items()):
                target = by_id.get(model_id)
                if target is not None:  # an alias on a deprecated version cannot serve
                    listed.append(_model_entry(f"{name}@{alias}", target))
        listed.extend(_model_entry(record.model_id, record) for record in records)
        return listed[:MAX_LISTED_MODELS]

    async def info(self, request: Request) -> Response:
        """``GET /info``: the server, its default model and the models it holds loaded."""
        self._authorize(request)
        return JSONResponse(await self._in_thread(self._info))

    def _info(self) -> dict[str, Any]:
        engine = self._engine
        loaded, cache = engine.loaded_snapshot()
        models = []
        for model_id, model in loaded:
            record = engine.registry.find_record(model_id)
            if record is None:  # deleted from the registry, still in the cache until it lets go
                continue
            models.append(
                {
                    "model_id": model_id,
                    "model_name": record.metadata.model_name,
                    "version": record.metadata.version,
                    "dimensions": model.embedding_dim,
                    "max_seq_length": model.max_seq_length,
                    "backend": model.info.backend,
                    "precision": model.info.precision,
                }
            )
        limits = engine.limits
        return {
            "server_version": self._server_version,
            "default_model": engine.default_model,
            "ready": self._health.status("") == SERVING,
            "loaded_models": models,
            "cache_used_bytes": cache.used_bytes,
            "cache_budget_bytes": cache.budget_bytes,
            "ab_testing_enabled": self._ab_enabled,
            "limits": {
                "max_batch_texts": limits.max_batch_texts,
                "max_text_chars": limits.max_text_chars,
                "max_body_bytes": self._limits.max_body_bytes,
                "max_in_flight_requests": self._limits.max_in_flight,
                "default_timeout_s": self._limits.default_timeout_s,
            },
        }

    async def metrics(self, request: Request) -> Response:
        """``GET /metrics``: Prometheus text format (OpenMetrics when the scraper asks for it)."""
        self._authorize(request)
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        payload = await self._in_thread(functools.partial(encode, self._metrics_registry))
        return Response(payload, headers={"content-type": content_type})

    async def health(self, request: Request) -> Response:
        """``GET /health``: liveness; the process answers, so it lives."""
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        """``GET /ready``: 200 while the default model serves (the gRPC health status), else 503 and why."""
        ready = self._health.status("") == SERVING
        reason = self._readiness.reason
        if not ready and reason.startswith("serving"):
            # The monitor still says serving, health does not: SIGTERM turned every status NOT_SERVING.
            reason = "shutting down: finishing in-flight calls"
        body = {"ready": ready, "status": "SERVING" if ready else "NOT_SERVING", "reason": reason}
        return JSONResponse(body, status_code=200 if ready else 503)

    # -- helpers ------------------------------------------------------------------------------------

    def _authorize(self, request: Request) -> None:
        """Let the request in if it carries the client or the admin token (every endpoint here needs a client)."""
        if self._access is None:
            return
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() == "bearer":  # the scheme is case-insensitive in HTTP
                header = f"Bearer {token.strip()}"
        if self._access.role_of(header) is None:
            raise HTTPProblem(
                401,
                "UNAUTHENTICATED",
                "missing or wrong bearer token in 'Authorization' (OpenAI clients send their api_key there)",
                headers={"www-authenticate": "Bearer"},
            )

    async def _read_body(self, request: Request) -> bytes:
        """The body, refused with 413 as soon as it is known to be over the limit (before it is all read)."""
        limit = self._limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(int(declared), limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(size, limit)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _in_thread(self, work: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)


def _answering(endpoint: Endpoint) -> Endpoint:
    """Wrap an endpoint so that any error answers in the OpenAI error shape (the one HTTP error path)."""

    @functools.wraps(endpoint)
    async def answered(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as exc:
            status, body, headers = describe(exc)
            return JSONResponse(body, status_code=status, headers=headers)

    return answered


async def _routing_error(request: Request, exc: Exception) -> Response:
    """Unknown paths (404) and wrong methods (405, with ``Allow``), in the error shape."""
    if not isinstance(exc, HTTPException):  # pragma: no cover - registered for HTTPException only
        raise exc
    path = request.url.path[:200]
    if exc.status_code == 405:
        body = error_body(405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed on {path}")
    elif exc.status_code == 404:
        body = error_body(
            404, "NOT_FOUND", f"no endpoint at {path}; see /v1/embeddings, /v1/models, /info, /metrics, /health, /ready"
        )
    else:
        body = error_body(exc.status_code, "INVALID_ARGUMENT", str(exc.detail)[:200])
    return JSONResponse(body, status_code=exc.status_code, headers=dict(exc.headers or {}))


async def _cancel_when_disconnected(request: Request, cancellation: Cancellation) -> None:
    """Cancel the request's queued work when its client goes away (the body has been read by now)."""
    try:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                cancellation.cancel()
                return
    except Exception:  # the connection broke: its client is gone too
        cancellation.cancel()


def _too_large(size: int, limit: int) -> HTTPProblem:
    return HTTPProblem(
        413, "REQUEST_TOO_LARGE",
        f"the request body has {size:,} bytes or more, over the limit of {limit:,} (limits.max_message_bytes); "
        "split the batch",
    )  # fmt: skip


def _model_entry(reference: str, record: ModelRecord) -> dict[str, Any]:
    """One entry of /v1/models: the OpenAI fields, and what the reference points to under ``rag_factory``."""
    return {
        "id": reference,
        "object": "model",
        "created": int(record.registered_at.timestamp()),
        "owned_by": "rag-factory",
        "rag_factory": {
            "model_id": record.model_id,
            "model_name": record.metadata.model_name,
            "version": record.metadata.version,
            "dimensions": record.metadata.embedding_dim,
        },
    }

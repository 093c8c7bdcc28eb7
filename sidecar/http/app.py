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
``GET /ready``               open    200 while the default model serves, else 503 with a short reason
===========================  ======  ================================================================

What one client can hold is bounded: the request head and then the body must arrive within
``read_timeout_s`` (the head in :mod:`sidecar.http.runner`), a body is read before the request takes one of
``max_in_flight`` places (so slow senders never keep others out), and JSON is parsed in a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rag_factory.errors import DeadlineExceededError, RagFactoryError, ResourceExhaustedError
from rag_factory.models.embedding.records import ModelRecord
from rag_factory.serving.engine import Cancellation, EmbedCall, EmbeddingEngine
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
from sidecar.metrics_http import choose_encoder_safely

logger = logging.getLogger(__name__)

# The deadline of a request that sends no x-rag-factory-timeout-s (OpenAI clients send none): its work is
# dropped from the model's queue when it passes, as for a gRPC call with this deadline.
DEFAULT_TIMEOUT_S = 30.0
# Seconds a client has to send a request's head, and then its body: a stalled client must not hold a
# connection, a body buffer or a place for ever. Generous for any client that sends what it has.
READ_TIMEOUT_S = 10.0
# /v1/models lists at most this many references, so that its answer stays small on a large registry.
MAX_LISTED_MODELS = 1000
# With an answer sent before the body was read in full: the connection closes rather than wait for the rest.
_CLOSE = {"connection": "close"}
# What /ready says: a state, never an exception's text (it is open to anyone; /info has the detail).
_NOT_READY = "the default model cannot serve; the server log and /info say why"
_SHUTTING_DOWN = "shutting down: finishing in-flight calls"

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class HTTPLimits:
    """What one HTTP server admits."""

    max_body_bytes: int  # larger bodies answer 413, checked while reading
    # Requests whose body has been read, running or waiting for a worker thread: embeddings and the
    # endpoints that use the worker threads (models, info, metrics). More answer 429 at once.
    max_in_flight: int
    default_timeout_s: float = DEFAULT_TIMEOUT_S
    read_timeout_s: float = READ_TIMEOUT_S  # for a request's head, then its body; 408 or closed after
    # Open connections (and running requests): uvicorn's limit_concurrency; requests beyond it answer 503.
    max_connections: int = 256


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
        self.limits = limits
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
        self._authorize(request)  # a refused token is not counted as a request: it asks for nothing
        arrived = time.monotonic()
        headers = request.headers
        request_id = headers.get("x-request-id", "")
        try:
            timeout_s = timeout_from_header(headers.get("x-rag-factory-timeout-s"), self.limits.default_timeout_s)
            fallback = flag_from_header(headers.get("x-rag-factory-allow-fallback"), "x-rag-factory-allow-fallback")
            body = await self._read_body(request, timeout_s)
            # A place is taken once the body is here: clients that send slowly never keep others out.
            self._admit("embedding")
        except ClientDisconnect:
            raise
        except Exception as exc:
            self._refused(exc, EmbedCall(texts=[], request_id=request_id))
            raise
        cancellation = Cancellation()
        watcher = asyncio.ensure_future(_cancel_when_disconnected(request, cancellation))
        try:
            payload, served = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._embed, body, request_id, fallback, arrived + timeout_s, cancellation
            )
        finally:
            watcher.cancel()
            self._in_flight -= 1
        return Response(payload, media_type="application/json", headers=served)

    def _embed(
        self, body: bytes, request_id: str, allow_fallback: bool, deadline: float, cancellation: Cancellation
    ) -> tuple[bytes, dict[str, str]]:
        # In a worker thread: parsing and validating up to 16 MiB of JSON, and rendering the answer of a
        # large batch, take tens of milliseconds that the event loop must not wait for. The time spent
        # waiting for this thread counts against the deadline, as in gRPC.
        parsed = None
        try:
            parsed = parse_embeddings_request(body, max_texts=self._engine.limits.max_batch_texts)
            message = embed_request(parsed, request_id=request_id, allow_fallback=allow_fallback)
            call = convert.embed_call(message, deadline - time.monotonic())
        except Exception as exc:
            known = EmbedCall(texts=[], request_id=request_id)
            if parsed is not None:
                known = EmbedCall(texts=parsed.texts(), model=parsed.reference(), request_id=request_id)
            self._refused(exc, known)
            raise
        outcome = self._engine.embed(call, cancellation=cancellation)  # counts its own failures
        return render(embeddings_response(outcome, parsed.encoding_format)), served_headers(outcome)

    def _refused(self, exc: Exception, call: EmbedCall) -> None:
        """Count an embedding request refused before the engine, by the reason its client gets."""
        reason = exc.reason if isinstance(exc, HTTPProblem | RagFactoryError) else "INTERNAL"
        self._engine.refused(reason, call)

    async def models(self, request: Request) -> Response:
        """``GET /v1/models``: what ``model`` may name, in the OpenAI list shape."""
        self._authorize(request)
        data = await self._in_thread(self._list_models, "models")
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
        return JSONResponse(await self._in_thread(self._info, "info"))

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
            "ready_reason": self._readiness.reason,  # the detail /ready, open to anyone, does not show
            "loaded_models": models,
            "cache_used_bytes": cache.used_bytes,
            "cache_budget_bytes": cache.budget_bytes,
            "ab_testing_enabled": self._ab_enabled,
            "limits": {
                "max_batch_texts": limits.max_batch_texts,
                "max_text_chars": limits.max_text_chars,
                "max_body_bytes": self.limits.max_body_bytes,
                "max_in_flight_requests": self.limits.max_in_flight,
                "default_timeout_s": self.limits.default_timeout_s,
                "read_timeout_s": self.limits.read_timeout_s,
                "max_connections": self.limits.max_connections,
            },
        }

    async def metrics(self, request: Request) -> Response:
        """``GET /metrics``: Prometheus text format (OpenMetrics when the scraper asks for it)."""
        self._authorize(request)
        # The metrics port's choice: prometheus_client's, or the text format for an Accept header that it
        # fails on (version=abc, a 500 before) or that it would echo into Content-Type (client's bytes).
        encode, content_type = choose_encoder_safely(request.headers.get("accept"))
        payload = await self._in_thread(functools.partial(encode, self._metrics_registry), "metrics")
        return Response(payload, headers={"content-type": content_type})

    async def health(self, request: Request) -> Response:
        """``GET /health``: liveness; the process answers, so it lives."""
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        """``GET /ready``: 200 while the default model serves (the gRPC health status), else 503 and why.

        The reason is one of a few fixed lines: the probe is open to anyone, and an exception's text names
        files and models. The monitor's full reason is in ``/info`` (behind the token) and in the log.
        """
        ready = self._health.status("") == SERVING
        detail = self._readiness.reason
        if ready:
            reason = "serving"
        elif detail.startswith("serving"):
            # The monitor still says serving, health does not: SIGTERM turned every status NOT_SERVING.
            reason = _SHUTTING_DOWN
        elif detail == "starting":
            reason = "starting: loading the default model"
        else:
            reason = _NOT_READY
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

    def _admit(self, what: str) -> None:
        """Take one of ``max_in_flight`` places (given back by the caller), or refuse at once with 429.

        Only the event loop's thread counts, so a plain integer is enough.

        Raises:
            ResourceExhaustedError: Every place is taken, as gRPC refuses calls beyond max_concurrent_rpcs.
        """
        if self._in_flight >= self.limits.max_in_flight:
            raise ResourceExhaustedError(
                f"{self._in_flight} HTTP requests are in progress, the most this server admits; "
                f"retry the {what} request with backoff",
                cause="too_many_requests",
            )
        self._in_flight += 1

    async def _read_body(self, request: Request, deadline_s: float) -> bytes:
        """The body, within the read timeout and the request's deadline; 413 as soon as it is over the limit.

        Raises:
            HTTPProblem: 413 over the limit; 408 when it has not all arrived within the read timeout
                (both close the connection: the rest of the body is not waited for).
            DeadlineExceededError: The request's own deadline, shorter than the read timeout, passed
                first (504, as gRPC answers a call whose deadline passes).
            ClientDisconnect: The client left before sending it all.
        """
        timeout_s = min(deadline_s, self.limits.read_timeout_s)
        limit = self.limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(int(declared), limit)
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(size, limit)
                    chunks.append(chunk)
        except TimeoutError:
            if deadline_s < self.limits.read_timeout_s:
                raise DeadlineExceededError(
                    f"the request's deadline ({deadline_s:g} s) passed while its body was still arriving "
                    f"({size:,} bytes came); nothing was computed"
                ) from None
            raise HTTPProblem(
                408, "REQUEST_TIMEOUT",
                f"the request body did not arrive within {timeout_s:g} s ({size:,} bytes came); send the "
                "whole body right after the headers",
                headers=dict(_CLOSE),
            ) from None  # fmt: skip
        return b"".join(chunks)

    async def _in_thread(self, work: Callable[[], Any], what: str) -> Any:
        """``work()`` in a worker thread, holding one of the places embedding requests take too."""
        self._admit(what)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work)
        finally:
            self._in_flight -= 1


def _answering(endpoint: Endpoint) -> Endpoint:
    """Wrap an endpoint so that any error answers in the OpenAI error shape (the one HTTP error path)."""

    @functools.wraps(endpoint)
    async def answered(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ClientDisconnect:
            # The client left while sending its request: nobody reads an answer, and it is no server error
            # (an ERROR line each time would let any client flood the log). Nothing was started for it.
            logger.debug("%s %s: the client left before sending its request", request.method, request.url.path[:200])
            return Response(status_code=499)
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
        headers=dict(_CLOSE),
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

"""Run the HTTP API with uvicorn in a thread of the sidecar process, on its own event loop.

The socket is bound here, before the thread starts, so that a taken port or a bad address fails
``build_server`` at once with an ``OSError`` (as gRPC's bind does), and port 0 is known at once.
Connections are bounded in number (uvicorn's ``limit_concurrency``) and in time (:class:`_HeadTimeoutH11`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import uvicorn
from prometheus_client import CollectorRegistry
from uvicorn.protocols.http.h11_impl import H11Protocol

from rag_factory.errors import InvalidConfigError
from rag_factory.serving.engine import EmbeddingEngine
from sidecar import startup
from sidecar.access import TokenAccess
from sidecar.health import HealthService, ReadinessMonitor
from sidecar.http.app import HTTPApi, HTTPLimits
from sidecar.settings import SidecarSettings

logger = logging.getLogger(__name__)

# How long start() waits for uvicorn to listen before it gives up.
_START_TIMEOUT_S = 10.0
# Open connections the server keeps per request it admits (concurrency.max_concurrent_rpcs), and at least:
# room for clients' keep-alive pools and for bodies being read, while bounding sockets and body buffers.
_CONNECTIONS_PER_REQUEST = 4
_MIN_CONNECTIONS = 64


def parse_address(address: str) -> tuple[str, int]:
    """``("127.0.0.1", 8080)`` from ``"127.0.0.1:8080"`` (``"[::1]:8080"`` for IPv6): start-up's parser.

    Raises:
        OSError: It is not HOST:PORT with a port from 0 to 65535 (as a failed bind, for ``build_server``).
    """
    try:
        return startup.parse_address(address, "http_address")
    except InvalidConfigError as exc:
        raise OSError(exc.message) from None


def _bind(address: str) -> socket.socket:
    host, port = parse_address(address)
    try:
        family, kind, proto, _, where = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise OSError(f"could not bind http_address {address!r}: {exc}") from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart without waiting
        sock.bind(where)
    except OSError as exc:
        sock.close()
        raise OSError(f"could not bind http_address {address!r}: {exc.strerror or exc}") from exc
    return sock


class _HeadTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose next request head does not come in time.

    uvicorn times out a keep-alive connection only while it is silent: one that connects and sends
    nothing, or half a request line, holds its socket (and a place under ``limit_concurrency``) for ever.
    Here the head of each request must arrive within ``head_timeout_s`` of the connection opening or of
    the previous answer ending. (The body has its own timeout, in the app.)
    """

    head_timeout_s: ClassVar[float]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._waiting_after: object = None  # the request/response cycle the awaited head comes after

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def on_response_complete(self) -> None:
        self._await_head()
        super().on_response_complete()  # may read a pipelined head at once

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not self._waiting_after:  # a new request's head was read: a new cycle runs it
            self._stop_waiting()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        self._stop_waiting()
        self._waiting_after = self.cycle
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _stop_waiting(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.cycle is self._waiting_after and not self.transport.is_closing():
            # No answer is possible without a request; closing is what servers do (nginx too).
            logger.debug("closing a connection that sent no complete request in %g s", self.head_timeout_s)
            self.transport.close()


def _protocol(head_timeout_s: float) -> type[H11Protocol]:
    """The h11 protocol class with ``head_timeout_s`` (uvicorn builds it from ``Config.http``, a class)."""
    return type("HeadTimeoutH11", (_HeadTimeoutH11,), {"head_timeout_s": head_timeout_s})


class HTTPServer:
    """uvicorn serving an ASGI app on a socket bound here, in a daemon thread.

    Args:
        app_api: The endpoints.
        address: HOST:PORT; port 0 picks a free port.
        cert_file, key_file: PEM files; both switch TLS on.
        grace_s: How long :meth:`stop` lets in-flight requests finish.
        executor: The worker threads of ``app_api``, shut down after the server stops.
    """

    def __init__(
        self,
        app_api: HTTPApi,
        address: str,
        *,
        cert_file: str | None,
        key_file: str | None,
        grace_s: float,
        executor: ThreadPoolExecutor,
    ) -> None:
        tls = bool(cert_file and key_file)
        limits = app_api.limits
        self._config = uvicorn.Config(
            app_api.app(),
            http=_protocol(limits.read_timeout_s),
            limit_concurrency=limits.max_connections,
            timeout_keep_alive=5,  # seconds an idle keep-alive connection stays open (uvicorn's default)
            lifespan="off",
            ws="none",
            log_config=None,  # the sidecar's logging stays as the process set it
            access_log=False,
            server_header=False,
            proxy_headers=False,
            ssl_certfile=cert_file if tls else None,
            ssl_keyfile=key_file if tls else None,
            timeout_graceful_shutdown=math.ceil(grace_s),
        )
        self._config.load()  # reads the TLS files now: a bad one fails the start, not the thread
        self._socket = _bind(address)
        self.port: int = self._socket.getsockname()[1]
        self.tls = tls
        self._server = uvicorn.Server(self._config)
        self._executor = executor
        self._grace_s = grace_s
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)

    def _run(self) -> None:
        # uvicorn logs "Started server process" and the like at INFO, which read as if a second process ran.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        try:
            self._server.run(sockets=[self._socket])
        except BaseException:  # SystemExit from uvicorn included: the thread must not take the process down
            logger.exception("the HTTP server stopped with an error")

    def start(self) -> None:
        """Serve in the background; return once the socket accepts connections.

        Raises:
            OSError: uvicorn did not start listening within a few seconds.
        """
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise OSError(f"the HTTP server did not start on port {self.port}; see the log")
            time.sleep(0.005)

    def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to the grace period), then stop (idempotent)."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=self._grace_s + 5.0)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._socket.close()


def start_http(
    settings: SidecarSettings,
    *,
    engine: EmbeddingEngine,
    health: HealthService,
    readiness: ReadinessMonitor,
    metrics_registry: CollectorRegistry,
    server_version: str,
) -> HTTPServer:
    """Start the HTTP API that ``settings.http_address`` asks for, over the same engine and tokens as gRPC.

    Raises:
        OSError: The address is malformed or taken, or the server did not start.
    """
    if settings.http_address is None:
        raise ValueError("http_address is null: the HTTP API is off")
    tokens = settings.auth_token or settings.client_token
    executor = ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="http")
    api = HTTPApi(
        engine,
        health=health,
        readiness=readiness,
        metrics_registry=metrics_registry,
        access=TokenAccess(settings.auth_token, settings.client_token) if tokens else None,
        executor=executor,
        limits=HTTPLimits(
            max_body_bytes=settings.limits.max_message_bytes,
            max_in_flight=settings.concurrency.max_concurrent_rpcs,
            max_connections=max(_MIN_CONNECTIONS, _CONNECTIONS_PER_REQUEST * settings.concurrency.max_concurrent_rpcs),
        ),
        server_version=server_version,
        ab_testing_enabled=settings.embedding.ab_testing.enabled,
    )
    server = HTTPServer(
        api,
        settings.http_address,
        cert_file=settings.tls.cert_file,
        key_file=settings.tls.key_file,
        grace_s=settings.grace_period_s,
        executor=executor,
    )
    server.start()
    return server

"""The separate metrics port (``metrics_address``): ``GET /metrics`` and nothing else.

prometheus_client's ``start_http_server`` answers every path with 200 and the metrics, so an HTTP health
probe pointed at this port (``/health``, ``/``) would always pass. This server answers ``/metrics`` (and
``HEAD``) and 404 for any other path.

It is small on purpose, and bounded: each connection has its own thread, so a connection that sends
nothing is closed after :data:`IDLE_TIMEOUT_S`, and beyond :data:`MAX_CONNECTIONS` at once a connection
is answered 503 and closed instead of getting a thread. The ``Accept`` header picks OpenMetrics or the
Prometheus text format; one the parser cannot read, or whose parts would be echoed into the response's
``Content-Type`` as something other than a plain media type, gets the text format.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from rag_factory.errors import InvalidConfigError
from rag_factory.models.monitoring.prometheus import ServingMetrics
from sidecar.startup import parse_address

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
# Seconds a connection may stay silent (while sending its request, or not reading the answer) before
# it is closed. A scrape takes milliseconds; ten seconds is far beyond any honest client.
IDLE_TIMEOUT_S = 10.0
# Connections served at once. Scrapers hold one each; sixteen leaves room for several, and caps the
# threads that connections which never send anything can hold.
MAX_CONNECTIONS = 16
# What a Content-Type chosen from the Accept header may hold: a media type and its parameters. prometheus_client
# copies the requested version into it, so an Accept header folded over lines would carry CR LF there.
_PLAIN_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.;=/ _+-]*")
_BUSY_BODY = b"too many connections to the metrics port; try again\n"
_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\nConnection: close\r\n\r\n" + _BUSY_BODY
)

Encoder = Callable[[Collector], bytes]


def choose_encoder_safely(accept: str | None) -> tuple[Encoder, str]:
    """prometheus_client's ``choose_encoder``, with the Prometheus text format when ``accept`` is unusable.

    Args:
        accept: The scraper's ``Accept`` header (OpenMetrics when it asks; otherwise Prometheus text).

    Returns:
        The encoder and the ``Content-Type`` to send. A header the parser fails on (``version=abc`` raises
        TypeError inside it) or one that would put anything but a plain media type into ``Content-Type``
        (CR LF from a folded header: response splitting) gets the text format.
    """
    try:
        encoder, content_type = choose_encoder(accept or "")
    except Exception:  # any failure to parse a client's header means the same: the default format
        return choose_encoder("")
    if _PLAIN_MEDIA_TYPE.fullmatch(content_type) is None:
        return choose_encoder("")
    return encoder, content_type


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "rag-factory-metrics"

    def setup(self) -> None:
        super().setup()
        # Every read and write of this connection: a silent or stalled client is dropped, not waited on.
        self.connection.settimeout(self.server.idle_timeout_s)

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def _answer(self, *, body: bool) -> None:
        if urlsplit(self.path).path != METRICS_PATH:
            payload, content_type, status = b"not found: metrics are at /metrics\n", "text/plain", HTTPStatus.NOT_FOUND
        else:
            encoder, content_type = choose_encoder_safely(self.headers.get("Accept"))
            payload, status = encoder(self.server.metrics.registry), HTTPStatus.OK
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        """Silent: a scrape every few seconds is not worth a log line."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a scrape in progress never holds the process open at exit

    def __init__(
        self,
        address: tuple[str, int],
        family: socket.AddressFamily,
        metrics: ServingMetrics,
        *,
        idle_timeout_s: float,
        max_connections: int,
    ) -> None:
        self.address_family = family  # read by the base class when it creates the socket
        self.metrics = metrics
        self.idle_timeout_s = idle_timeout_s
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection on its own thread if a slot is free; otherwise answer 503 and close it."""
        if not self._slots.acquire(blocking=False):
            _refuse(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started (threads exhausted): the slot is not held
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line, no traceback on stderr: usually a scraper that hung up before its answer was written."""
        logger.debug("metrics port: a connection from %s ended in an error", client_address, exc_info=True)


def _refuse(connection: socket.socket) -> None:
    # Sent from the accepting thread: a fresh connection's send buffer is empty, so this never waits long.
    try:
        connection.settimeout(0.5)
        connection.sendall(_BUSY)
    except OSError:
        pass  # it went away already: nothing to tell it


class MetricsServer:
    """A started metrics port; :meth:`close` stops it and frees the port."""

    def __init__(self, server: _Server, host: str) -> None:
        self._server = server
        self.host = host
        self.port: int = server.server_address[1]
        # A short poll: ``close`` (at server stop) waits up to one interval for the loop to notice.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="metrics-http", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop answering and release the port (idempotent)."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def start_metrics_server(
    address: str,
    metrics: ServingMetrics,
    *,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
    max_connections: int = MAX_CONNECTIONS,
) -> MetricsServer:
    """Serve ``metrics`` at ``http://ADDRESS/metrics`` from a background thread.

    Args:
        address: ``HOST:PORT`` (``[::1]:9090`` for IPv6; port 0 picks a free one).
        metrics: The server's metrics.
        idle_timeout_s: Seconds a connection may stay silent before it is closed.
        max_connections: Connections served at once; more are answered 503 and closed.

    Returns:
        The running server; its ``port`` is the bound one.

    Raises:
        OSError: The address is not ``HOST:PORT``, does not resolve, or cannot be bound (taken, not
            this machine's); the message names the address, for a one-line start-up error.
    """
    try:
        host, port = parse_address(address, "metrics_address")  # start-up's parser, one for every address
    except InvalidConfigError as exc:
        raise OSError(exc.message) from None
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        server = _Server((host, port), family, metrics, idle_timeout_s=idle_timeout_s, max_connections=max_connections)
    except OSError as exc:
        raise OSError(f"metrics_address {address} cannot be bound: {exc.strerror or exc}") from exc
    return MetricsServer(server, host)

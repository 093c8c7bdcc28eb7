"""The separate metrics port (``metrics_address``): ``GET /metrics`` and nothing else.

prometheus_client's ``start_http_server`` answers every path with 200 and the metrics, so an HTTP health
probe pointed at this port (``/health``, ``/``) would always pass. This server answers ``/metrics`` (and
``HEAD``) and 404 for any other path.
"""

from __future__ import annotations

import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from rag_factory.models.monitoring.prometheus import ServingMetrics

METRICS_PATH = "/metrics"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "rag-factory-metrics"

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def _answer(self, *, body: bool) -> None:
        if urlsplit(self.path).path != METRICS_PATH:
            payload, content_type, status = b"not found: metrics are at /metrics\n", "text/plain", HTTPStatus.NOT_FOUND
        else:
            payload, content_type = self.server.metrics.exposition_for(self.headers.get("Accept"))
            status = HTTPStatus.OK
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

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, metrics: ServingMetrics) -> None:
        self.address_family = family  # read by the base class when it creates the socket
        self.metrics = metrics
        super().__init__(address, _Handler)


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


def start_metrics_server(address: str, metrics: ServingMetrics) -> MetricsServer:
    """Serve ``metrics`` at ``http://ADDRESS/metrics`` from a background thread.

    Args:
        address: ``HOST:PORT`` (``[::1]:9090`` for IPv6; port 0 picks a free one).
        metrics: The server's metrics.

    Returns:
        The running server; its ``port`` is the bound one.

    Raises:
        OSError: The address is not ``HOST:PORT``, does not resolve, or cannot be bound (taken, not
            this machine's); the message names the address, for a one-line start-up error.
    """
    host, _, port_text = address.rpartition(":")
    host = host.strip("[]")
    if not host or not port_text.isdigit() or int(port_text) > 65535:
        raise OSError(f"metrics_address {address[:100]!r} is not HOST:PORT (say 127.0.0.1:9090)")
    try:
        family = socket.getaddrinfo(host, int(port_text), type=socket.SOCK_STREAM)[0][0]
        server = _Server((host, int(port_text)), family, metrics)
    except OSError as exc:
        raise OSError(f"metrics_address {address} cannot be bound: {exc.strerror or exc}") from exc
    return MetricsServer(server, host)

"""The separate metrics port (``metrics_address``) and the request log, on a real sidecar (issue 19).

The port used to answer every path with 200 and the metrics, so an HTTP health probe aimed at it always
passed; a taken port ended in a traceback. The request log is switched on by a setting and written by
the engine, so gRPC calls log like any other surface's.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from rag_factory.models.monitoring import ServingMetrics
from rag_factory_contract.v1 import embedding_pb2, embedding_pb2_grpc
from sidecar.metrics_http import MetricsServer, start_metrics_server
from sidecar.server import build_server, build_services
from sidecar.settings import SidecarSettings, load_settings
from tests.conftest import RunningSidecar, start_sidecar


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _get(port: int, path: str, method: str = "GET") -> tuple[int, str, str]:
    """Status, content type and body of one request to the metrics port."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read().decode()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def sidecar(sidecar_registry_path: Path, model_cache_dir: Path) -> Iterator[tuple[RunningSidecar, int]]:
    """A real sidecar with a metrics port and the request log on; its metrics port."""
    port = _free_port()
    running = start_sidecar(
        sidecar_registry_path, model_cache_dir, metrics_address=f"127.0.0.1:{port}", request_log=True
    )
    yield running, port
    running.server.stop(grace=2).wait()
    running.services.close()


@pytest.mark.slow
def test_the_metrics_port_serves_the_servers_process_and_build_metrics_at_metrics(
    sidecar: tuple[RunningSidecar, int],
) -> None:
    status, content_type, body = _get(sidecar[1], "/metrics")

    assert status == 200 and content_type.startswith("text/plain")
    assert "rag_factory_build_info{" in body and "rag_factory_model_info{" in body  # the default model is loaded
    assert "process_cpu_seconds_total" in body and "python_info{" in body
    assert 'rag_factory_queue_depth{model_id="minilm-onnx"} 0.0' in body


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/"), ("GET", "/health"), ("GET", "/ready"), ("GET", "/v1/embeddings"), ("GET", "/metrics/x")],
    ids=["root", "health", "ready", "embeddings", "below-metrics"],
)
def test_the_metrics_port_answers_404_on_any_other_path(
    sidecar: tuple[RunningSidecar, int], method: str, path: str
) -> None:
    status, _, body = _get(sidecar[1], path, method)

    assert status == 404  # so a health probe pointed at this port fails, as it should
    assert "rag_factory_" not in body and "/metrics" in body


@pytest.mark.slow
def test_a_grpc_call_is_counted_and_logged_by_the_engine(
    sidecar: tuple[RunningSidecar, int], caplog: pytest.LogCaptureFixture
) -> None:
    running, port = sidecar
    caplog.set_level(logging.INFO, logger="rag_factory.requests")
    with grpc.insecure_channel(running.address) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        stub.Embed(embedding_pb2.EmbedRequest(texts=["BRCA1 mutations"], request_id="probe-1"), timeout=30)
        with pytest.raises(grpc.RpcError):
            stub.Embed(embedding_pb2.EmbedRequest(texts=["x"], model="unknown-model"), timeout=30)

    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "rag_factory.requests"]
    assert [(line["status"], line["reason"]) for line in lines] == [("ok", ""), ("error", "MODEL_NOT_FOUND")]
    assert lines[0]["request_id"] == "probe-1" and lines[0]["model_id"] == "minilm-onnx"
    body = _get(port, "/metrics")[2]
    assert 'rag_factory_embed_requests_total{model_id="",reason="MODEL_NOT_FOUND",status="error"' in body
    assert "unknown-model" not in body


@pytest.mark.slow
def test_a_taken_metrics_port_is_an_error_that_names_the_address(sidecar_registry_path: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        settings = SidecarSettings.model_validate(
            {
                "address": "127.0.0.1:0",
                "metrics_address": address,
                "http_address": None,
                "models": {
                    "embedding": {"registry_path": str(sidecar_registry_path), "cache_dir": str(tmp_path / "cache")}
                },
                "load_entry_point_plugins": False,
            }
        )
        services = build_services(settings)
        try:
            with pytest.raises(OSError, match=f"metrics_address {address} cannot be bound: ") as failed:
                build_server(settings, services)
        finally:
            services.close()

    assert "\n" not in str(failed.value)  # one line for the start-up error


@pytest.mark.parametrize(
    "address",
    ["notanaddress", "127.0.0.1:", ":9090", "127.0.0.1:99999"],
    ids=["no-port", "empty-port", "no-host", "big"],
)
def test_a_malformed_metrics_address_is_an_error_that_names_it(address: str) -> None:
    with pytest.raises(OSError, match="is not HOST:PORT"):
        start_metrics_server(address, ServingMetrics())


def test_a_metrics_server_on_port_0_picks_a_free_port_and_frees_it_on_close() -> None:
    server = start_metrics_server("127.0.0.1:0", ServingMetrics())
    try:
        status, _, body = _get(server.port, "/metrics")
        head = _get(server.port, "/metrics", "HEAD")
    finally:
        server.close()

    assert status == 200 and "rag_factory_build_info" in body
    assert head[0] == 200 and head[2] == ""
    with socket.socket() as again:
        # Reuse past the closed connections' TIME_WAIT; a listener still open would refuse the bind.
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", server.port))
        again.listen()


def test_the_request_log_is_off_unless_the_setting_or_its_variable_turns_it_on() -> None:
    assert load_settings(environ={}).request_log is False
    assert load_settings(environ={"RAG_FACTORY_REQUEST_LOG": "true"}).request_log is True


# -- bounded: silent connections, too many connections, headers it cannot use (raw sockets) -----------------


@pytest.fixture
def small_metrics_server() -> Iterator[MetricsServer]:
    """A metrics port with short limits: connections silent for 0.5 s are closed; two are served at once."""
    server = start_metrics_server("127.0.0.1:0", ServingMetrics(), idle_timeout_s=0.5, max_connections=2)
    yield server
    server.close()


def _raw_exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` as it is and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _head_of(response: bytes) -> tuple[str, list[str]]:
    """The status line and the header lines of a raw response."""
    head = response.partition(b"\r\n\r\n")[0].decode("latin-1")
    status, *headers = head.split("\r\n")
    return status, headers


def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(
    small_metrics_server: MetricsServer,
) -> None:
    with socket.create_connection(("127.0.0.1", small_metrics_server.port), timeout=10) as silent:
        started = time.monotonic()
        assert silent.recv(1) == b""  # closed by the server; before, it waited for a request line for ever

        assert time.monotonic() - started < 5


def test_connections_beyond_the_cap_get_503_and_slots_come_back_when_connections_end(
    small_metrics_server: MetricsServer,
) -> None:
    port = small_metrics_server.port
    # Two silent connections hold both slots (accepted in order, so before the third).
    held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as third:
            refused = third.recv(4096)
        assert refused.startswith(b"HTTP/1.0 503 ") and b"too many connections" in refused
    finally:
        for connection in held:
            connection.close()
    # The server notices the closed connections, and their threads give the slots back.
    deadline = time.monotonic() + 5
    while (status := _head_of(_raw_exchange(port, b"GET /metrics HTTP/1.0\r\n\r\n"))[0]) != "HTTP/1.0 200 OK":
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


@pytest.mark.parametrize(
    "accept",
    ["application/openmetrics-text; version=abc", "application/openmetrics-text; version=1.x.0"],
    ids=["version-abc", "version-1.x.0"],
)
def test_an_accept_header_the_parser_fails_on_gets_the_text_format(
    small_metrics_server: MetricsServer, accept: str
) -> None:
    # prometheus_client's choose_encoder raises TypeError on these; the connection used to drop.
    response = _raw_exchange(small_metrics_server.port, f"GET /metrics HTTP/1.0\r\nAccept: {accept}\r\n\r\n".encode())

    status, headers = _head_of(response)
    assert status == "HTTP/1.0 200 OK"
    assert "Content-Type: text/plain; version=0.0.4; charset=utf-8" in headers
    assert b"rag_factory_build_info{" in response


def test_a_folded_accept_header_is_not_echoed_into_the_response_headers(small_metrics_server: MetricsServer) -> None:
    # An obsolete line fold keeps CR LF in the header's value; prometheus_client copies the version into
    # Content-Type, which would then carry a header of the client's choosing (response splitting).
    request = (
        b"GET /metrics HTTP/1.0\r\nAccept: application/openmetrics-text; version=2.0.0\r\n X-Injected: yes\r\n\r\n"
    )

    status, headers = _head_of(_raw_exchange(small_metrics_server.port, request))

    assert status == "HTTP/1.0 200 OK"
    assert not any("X-Injected" in line for line in headers), headers
    assert "Content-Type: text/plain; version=0.0.4; charset=utf-8" in headers


def test_openmetrics_is_still_sent_when_asked_for_plainly(small_metrics_server: MetricsServer) -> None:
    request = b"GET /metrics HTTP/1.0\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n"

    response = _raw_exchange(small_metrics_server.port, request)

    assert any(
        line.startswith("Content-Type: application/openmetrics-text; version=1.0.0") for line in _head_of(response)[1]
    )
    assert response.endswith(b"# EOF\n")

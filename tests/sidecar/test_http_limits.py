"""What one HTTP client can hold and cost the server: time to send a request, places, connections, the work
of parsing a body, and how refusals are answered, logged and counted.

Raw sockets stand for the slow and broken clients that a real client library would never be. The session's
sidecar serves the requests; a second HTTP server over its engine, with a 1 s read timeout, one place and a
few connections, shows the limits without waiting for their defaults."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest

from rag_factory_contract.v1 import embedding_pb2, embedding_pb2_grpc
from sidecar.health import ReadinessMonitor
from sidecar.http.app import HTTPApi, HTTPLimits
from sidecar.http.runner import HTTPServer
from tests.conftest import RunningSidecar

pytestmark = pytest.mark.slow

READ_TIMEOUT_S = 1.0
MAX_CONNECTIONS = 6
LONG_TEXTS = [f"{i} " + "protein folding in the cytoplasm " * 40 for i in range(24)]
PLAIN_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@pytest.fixture(scope="module")
def base_url(running_sidecar: RunningSidecar) -> str:
    """The session sidecar's HTTP API (default limits, no tokens)."""
    return f"http://127.0.0.1:{running_sidecar.services.http_port}"


@pytest.fixture(scope="module")
def strict(running_sidecar: RunningSidecar) -> Iterator[HTTPServer]:
    """A second HTTP server over the session sidecar's engine: 1 s to send a request, one place, 6 connections."""
    services = running_sidecar.services
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="http-limits")
    api = HTTPApi(
        services.engine,
        health=services.health,
        # Never started: this server's /ready is not under test.
        readiness=ReadinessMonitor(
            services.health, [], warm_up=lambda: "", check=lambda: "", interval_s=60.0, on_ready=lambda: None
        ),
        metrics_registry=services.metrics.registry,
        access=None,
        executor=executor,
        limits=HTTPLimits(
            max_body_bytes=100_000,
            max_in_flight=1,
            read_timeout_s=READ_TIMEOUT_S,
            max_connections=MAX_CONNECTIONS,
        ),
        server_version="test",
        ab_testing_enabled=False,
    )
    server = HTTPServer(api, "127.0.0.1:0", cert_file=None, key_file=None, grace_s=1.0, executor=executor)
    server.start()
    yield server
    server.stop()


def _connect(port: int, data: bytes = b"") -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.sendall(data)
    return connection


def _post_head(content_length: int) -> bytes:
    return (
        f"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode()


def _until_closed(connection: socket.socket, within_s: float) -> bytes:
    """Everything the server sends until it closes the connection (socket.timeout if it does not in time)."""
    connection.settimeout(within_s)
    received = b""
    while chunk := connection.recv(65_536):
        received += chunk
    return received


# -- time: a request must arrive in time ---------------------------------------------------------------


def test_clients_that_send_their_body_slowly_keep_no_one_out_and_get_408(strict: HTTPServer) -> None:
    # Before: the place was taken before the body was read, and the read never timed out, so a few clients
    # sending "Content-Length: 100" and one byte made every other request answer 429 for ever.
    slow = [_connect(strict.port, _post_head(100) + b"{") for _ in range(3)]
    try:
        time.sleep(0.1)
        other = httpx.post(f"http://127.0.0.1:{strict.port}/v1/embeddings", json={"input": "genes"}, timeout=30)
        assert other.status_code == 200, other.text

        started = time.monotonic()
        answers = [_until_closed(connection, READ_TIMEOUT_S + 5) for connection in slow]
        assert time.monotonic() - started < READ_TIMEOUT_S + 2
    finally:
        for connection in slow:
            connection.close()
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 ") and b'"code":"REQUEST_TIMEOUT"' in answer
        assert b"connection: close" in answer.lower()


def test_a_deadline_shorter_than_the_read_timeout_that_passes_mid_body_answers_504(strict: HTTPServer) -> None:
    # The client's own deadline ran out, not the server's patience: DEADLINE_EXCEEDED, as gRPC answers.
    head = _post_head(100).replace(b"\r\n\r\n", b"\r\nx-rag-factory-timeout-s: 0.2\r\n\r\n")
    connection = _connect(strict.port, head + b"{")
    try:
        answer = _until_closed(connection, READ_TIMEOUT_S + 5)
    finally:
        connection.close()
    assert answer.startswith(b"HTTP/1.1 504 ") and b'"code":"DEADLINE_EXCEEDED"' in answer


@pytest.mark.parametrize(
    "sent",
    [b"", b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\n"],
    ids=["nothing", "half-a-head"],
)
def test_a_connection_that_never_completes_a_request_head_is_closed(strict: HTTPServer, sent: bytes) -> None:
    # Before: uvicorn timed out only idle keep-alive connections, so these held a socket for ever.
    started = time.monotonic()
    with _connect(strict.port, sent) as connection:
        assert _until_closed(connection, READ_TIMEOUT_S + 5) == b""
    assert time.monotonic() - started < READ_TIMEOUT_S + 2


def test_connections_beyond_the_cap_are_refused_with_503(strict: HTTPServer) -> None:
    idle = [_connect(strict.port) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.1)  # the server has accepted them (well within the 1 s they have to send a head)
        refused = httpx.get(f"http://127.0.0.1:{strict.port}/health", timeout=5)
    finally:
        for connection in idle:
            connection.close()
    assert refused.status_code == 503

    deadline = time.monotonic() + 5  # the closed connections free their places
    while httpx.get(f"http://127.0.0.1:{strict.port}/health", timeout=5).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)


# -- places: the one limit covers every endpoint that uses the worker threads -------------------------


def test_models_info_and_metrics_take_a_place_like_embedding_requests(strict: HTTPServer) -> None:
    # Before: they had no limit and shared the worker threads with embeddings.
    paths = ["/v1/models", "/info", "/metrics"]
    refused: dict[str, httpx.Response] = {}
    done = threading.Event()

    def long_request() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{strict.port}", timeout=120) as other:
            while other.post("/v1/embeddings", json={"input": LONG_TEXTS}).status_code == 429:
                time.sleep(0.001)  # a probe held the one place; try again
        done.set()

    threading.Thread(target=long_request, daemon=True).start()
    with httpx.Client(base_url=f"http://127.0.0.1:{strict.port}", timeout=60) as client:
        attempt = 0
        while not done.is_set() and len(refused) < len(paths):
            path = paths[attempt % len(paths)]
            attempt += 1
            response = client.get(path)
            if response.status_code == 429:
                refused.setdefault(path, response)
            time.sleep(0.005)
    assert done.wait(120)

    let_in = set(paths) - set(refused)
    assert not let_in, f"let in while the long request held the one place: {let_in}"
    for response in refused.values():
        error = response.json()["error"]
        assert (error["code"], error["metadata"]["cause"]) == ("RESOURCE_EXHAUSTED", "too_many_requests")


def test_a_client_that_leaves_mid_body_is_no_server_error(strict: HTTPServer, caplog: pytest.LogCaptureFixture) -> None:
    # Before: starlette's ClientDisconnect became a 500 with an ERROR line and its traceback, each time.
    caplog.set_level(logging.DEBUG)
    with _connect(strict.port, _post_head(1_000) + b'{"input": "ge'):
        time.sleep(0.1)
    time.sleep(0.3)

    assert httpx.get(f"http://127.0.0.1:{strict.port}/health", timeout=5).status_code == 200
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING], caplog.text
    assert "the client left before sending its request" in caplog.text


# -- work: what a body can make the server do ----------------------------------------------------------


def test_a_long_list_is_refused_by_its_length_before_it_is_validated(base_url: str) -> None:
    # Two bytes an item: pydantic would have built a million errors (seconds, gigabytes) on the event loop.
    body = b'{"input": ["a"' + b",1" * 1_000_000 + b"]}"
    response = httpx.post(
        f"{base_url}/v1/embeddings", content=body, headers={"content-type": "application/json"}, timeout=60
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == "1000001 texts exceed the limit of 256 per request; split the batch"
    assert (error["code"], error["param"]) == ("INVALID_ARGUMENT", "input")


@pytest.mark.parametrize(
    "body",
    [b'{"input": ' + b"[" * 100_000, b'{"input": "a", "dimensions": ' + b"9" * 5_000 + b"}"],
    ids=["nested-too-deeply", "an-integer-of-5000-digits"],
)
def test_json_the_parser_refuses_is_a_400_not_a_500(base_url: str, body: bytes) -> None:
    # Before: RecursionError and the 4300-digit ValueError escaped the JSON check as internal errors.
    response = httpx.post(f"{base_url}/v1/embeddings", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 400 and response.json()["error"]["code"] == "INVALID_JSON"


@pytest.mark.parametrize(
    "accept",
    [
        b"application/openmetrics-text; version=abc",
        b"application/openmetrics-text; version=1.0.0.\xff",
        # A header folded over two lines, as h11 hands it over (CR LF turned into a space).
        b"application/openmetrics-text; version=2.0.0 X-Injected: yes",
    ],
    ids=["version-prometheus-client-cannot-compare", "a-version-it-would-echo", "a-folded-header"],
)
def test_an_odd_accept_header_gets_the_plain_text_format(base_url: str, accept: bytes) -> None:
    response = httpx.get(f"{base_url}/metrics", headers={b"accept": accept})

    assert response.status_code == 200 and response.headers["content-type"] == PLAIN_TEXT
    assert "rag_factory_embed_requests_total" in response.text


# -- counting: a refused request is still a request ----------------------------------------------------


def test_requests_refused_before_the_engine_are_counted_on_both_surfaces(
    running_sidecar: RunningSidecar, base_url: str
) -> None:
    registry = running_sidecar.services.metrics.registry

    def refused(reason: str) -> float:
        labels = {"model_id": "", "version": "", "variant": "", "status": "error", "reason": reason}
        return registry.get_sample_value("rag_factory_embed_requests_total", labels) or 0.0

    invalid, malformed = refused("INVALID_ARGUMENT"), refused("INVALID_JSON")
    with grpc.insecure_channel(running_sidecar.address) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:  # refused by convert.embed_call, before the engine
            stub.Embed(embedding_pb2.EmbedRequest(texts=["genes", "\u200b\u200b"]), timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    unknown_field = httpx.post(f"{base_url}/v1/embeddings", json={"input": "genes", "dimension": 8})
    not_json = httpx.post(f"{base_url}/v1/embeddings", content=b"{not json")

    assert (unknown_field.status_code, not_json.status_code) == (400, 400)
    assert refused("INVALID_ARGUMENT") == invalid + 2 and refused("INVALID_JSON") == malformed + 1

"""The HTTP API of a real sidecar, through real clients: the official openai client, LlamaIndex's
OpenAIEmbedding, and plain HTTP where a client would hide what is sent. One sidecar serves the module; it
serves gRPC on the same engine, so the two surfaces are compared call for call."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import openai
import pytest
from llama_index.embeddings.openai import OpenAIEmbedding

from rag_factory_contract.v1 import ab_pb2, ab_pb2_grpc, common_pb2, embedding_pb2, embedding_pb2_grpc
from sidecar.server import build_server, build_services
from sidecar.settings import SidecarSettings
from tests.conftest import RunningSidecar, register_minilm_onnx, start_sidecar

pytestmark = pytest.mark.slow

ADMIN = "admin-token-for-http-tests"
CLIENT = "client-token-for-http-tests"
CANDIDATE = "minilm-onnx-next"
MAX_BODY = 200_000
TEXTS = [
    "BRCA1 mutations raise the risk of breast cancer",
    "tumour suppressor genes",
    "Vitamin D deficiency and bone density in older adults",
]


@pytest.fixture(scope="module")
def sidecar(
    sidecar_registry_path: Path, onnx_export_dir: Path, model_cache_dir: Path, tmp_path_factory: Any
) -> Iterator[RunningSidecar]:
    """A sidecar with tokens, a small body limit, one request at a time, an A/B candidate and a broken model."""
    registry = tmp_path_factory.mktemp("http") / "registry"
    shutil.copytree(sidecar_registry_path, registry)
    register_minilm_onnx(registry, CANDIDATE, "1.2.0", onnx_export_dir, base_model="minilm-onnx")
    broken = tmp_path_factory.mktemp("broken")
    (broken / "model.onnx").write_bytes(b"this is not an onnx graph")
    register_minilm_onnx(registry, "ft-1.1.0", "1.1.0", broken, model_name="ft")
    running = start_sidecar(
        registry,
        model_cache_dir,
        http_address="127.0.0.1:0",
        auth_token=ADMIN,
        client_token=CLIENT,
        limits={"max_message_bytes": MAX_BODY},
        # One request at a time, on each surface: the test of the concurrency cap needs only two requests.
        concurrency={"max_concurrent_rpcs": 1},
    )
    yield running
    running.server.stop(grace=5).wait()
    running.services.close()


@pytest.fixture(scope="module")
def base_url(sidecar: RunningSidecar) -> str:
    return f"http://127.0.0.1:{sidecar.services.http_port}"


@pytest.fixture(scope="module")
def client(base_url: str) -> openai.OpenAI:
    # No retries: a refusal must reach the test as it was sent.
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=CLIENT, max_retries=0)


@pytest.fixture(scope="module")
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {CLIENT}"}, timeout=60) as plain:
        yield plain


@pytest.fixture(scope="module")
def grpc_channel(sidecar: RunningSidecar) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(sidecar.address) as channel:
        yield channel


def _grpc_embed(channel: grpc.Channel, texts: list[str], **fields: Any) -> embedding_pb2.EmbedResponse:
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
    request = embedding_pb2.EmbedRequest(texts=texts, **fields)
    return stub.Embed(request, timeout=60, metadata=[("authorization", f"Bearer {ADMIN}")])


def _grpc_vectors(channel: grpc.Channel, texts: list[str], **fields: Any) -> np.ndarray:
    response = _grpc_embed(channel, texts, **fields)
    return np.frombuffer(response.packed, dtype="<f4").reshape(response.count, response.dimension)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# -- real clients --------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding_format", ["base64", "float"])
def test_the_openai_client_gets_the_vectors_grpc_gives(
    client: openai.OpenAI, grpc_channel: grpc.Channel, encoding_format: str
) -> None:
    response = client.embeddings.create(model="minilm-onnx", input=TEXTS, encoding_format=encoding_format)  # type: ignore[arg-type]

    if encoding_format == "base64":  # asked for by name, the client hands the strings over undecoded
        vectors = np.array([np.frombuffer(base64.b64decode(item.embedding), dtype="<f4") for item in response.data])
    else:
        vectors = np.array([item.embedding for item in response.data])
    assert [item.index for item in response.data] == [0, 1, 2] and vectors.shape == (3, 384)
    assert np.all(_cosines(vectors, _grpc_vectors(grpc_channel, TEXTS, model="minilm-onnx")) >= 0.9999)
    assert response.model == "minilm-onnx"


def test_the_openai_client_asks_for_base64_by_default_and_decodes_little_endian_float32(
    client: openai.OpenAI, grpc_channel: grpc.Channel
) -> None:
    response = client.embeddings.create(model="minilm-onnx", input=TEXTS[0])  # sends encoding_format=base64

    assert np.all(_cosines(np.array([response.data[0].embedding]), _grpc_vectors(grpc_channel, TEXTS[:1])) >= 0.9999)


def test_llamaindex_openai_embedding_gets_the_vectors_grpc_gives(base_url: str, grpc_channel: grpc.Channel) -> None:
    embedding = OpenAIEmbedding(api_base=f"{base_url}/v1", api_key=CLIENT, model_name="minilm-onnx", max_retries=0)

    documents = np.array(embedding.get_text_embedding_batch(TEXTS))
    query = np.array([embedding.get_query_embedding(TEXTS[1])])
    async_query = np.array([asyncio.run(embedding.aget_query_embedding(TEXTS[2]))])

    reference = _grpc_vectors(grpc_channel, TEXTS, model="minilm-onnx")
    assert np.all(_cosines(documents, reference) >= 0.9999)
    assert _cosines(query, reference[1:2])[0] >= 0.9999 and _cosines(async_query, reference[2:3])[0] >= 0.9999


@pytest.mark.parametrize("model", ["default", "", None], ids=["default", "empty", "omitted"])
def test_default_empty_or_no_model_asks_for_the_server_s_default_model(http: httpx.Client, model: str | None) -> None:
    body: dict[str, Any] = {"input": "tumour suppressor genes"}
    if model is not None:
        body["model"] = model
    response = http.post("/v1/embeddings", json=body)

    assert response.status_code == 200, response.text
    assert response.json()["model"] == "minilm-onnx" and response.headers["x-rag-factory-model-id"] == "minilm-onnx"


def test_the_served_model_is_named_in_headers_and_in_a_field_openai_clients_ignore(client: openai.OpenAI) -> None:
    raw = client.embeddings.with_raw_response.create(
        model="minilm@1.0.0", input=TEXTS, extra_headers={"x-request-id": "req-http-1"}
    )
    parsed = raw.parse()

    assert raw.headers["x-rag-factory-model-id"] == "minilm-onnx"
    assert raw.headers["x-rag-factory-model-version"] == "1.0.0"
    assert raw.headers["x-rag-factory-fallback"] == "false" and raw.headers["x-request-id"] == "req-http-1"
    extra = parsed.model_extra["rag_factory"]  # type: ignore[index]
    assert (extra["model_id"], extra["version"], extra["requested_model"]) == ("minilm-onnx", "1.0.0", "minilm@1.0.0")
    assert extra["request_id"] == "req-http-1" and extra["timings"]["total_ms"] > 0 and extra["dimensions"] == 384


def test_dimensions_cut_and_renormalise_like_grpc(client: openai.OpenAI, grpc_channel: grpc.Channel) -> None:
    response = client.embeddings.create(model="minilm-onnx", input=TEXTS, dimensions=64)

    vectors = np.array([item.embedding for item in response.data])
    assert vectors.shape == (3, 64) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    full = _grpc_vectors(grpc_channel, TEXTS, model="minilm-onnx")
    assert np.all(_cosines(vectors, full[:, :64]) >= 0.9999)


def test_user_is_the_routing_key_and_picks_the_arm_grpc_picks(
    sidecar: RunningSidecar, http: httpx.Client, grpc_channel: grpc.Channel
) -> None:
    ab_pb2_grpc.ABTestServiceStub(grpc_channel).StartExperiment(
        ab_pb2.StartExperimentRequest(
            name="http-canary",
            model_name="minilm",
            candidate=CANDIDATE,
            plan=ab_pb2.RampPlan(steps=[0.5, 1.0], min_samples_per_step=10_000),
        ),
        timeout=60,
        metadata=[("authorization", f"Bearer {ADMIN}")],
    )
    names = {common_pb2.VARIANT_CONTROL: "control", common_pb2.VARIANT_CANDIDATE: "candidate"}
    seen = set()
    for user in (f"user-{i}" for i in range(16)):
        answer = http.post("/v1/embeddings", json={"model": "minilm@production", "input": "genes", "user": user})
        served = _grpc_embed(grpc_channel, ["genes"], model="minilm@production", routing_key=user).served_by
        assert answer.headers["x-rag-factory-variant"] == names[served.variant]
        assert answer.headers["x-rag-factory-model-id"] == served.model_id
        assert answer.headers["x-rag-factory-experiment"] == "http-canary"
        seen.add(served.model_id)
    assert seen == {"minilm-onnx", CANDIDATE}


def test_a_failed_model_is_refused_unless_the_request_allows_the_fallback(http: httpx.Client) -> None:
    refused = http.post("/v1/embeddings", json={"model": "ft@1.1.0", "input": "genes"})
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "FALLBACK_REFUSED"

    allowed = http.post(
        "/v1/embeddings",
        json={"model": "ft@1.1.0", "input": "genes"},
        headers={"x-rag-factory-allow-fallback": "true"},
    )
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["x-rag-factory-fallback"] == "true"
    assert allowed.headers["x-rag-factory-model-id"] == "minilm-onnx" == allowed.json()["model"]


# -- errors ---------------------------------------------------------------------------------------------


def test_an_unknown_model_is_404_model_not_found_to_the_openai_client(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client.embeddings.create(model="no-such-model", input="genes")
    error = raised.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["param"], error["type"]) == ("MODEL_NOT_FOUND", "model", "not_found_error")


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"input": ""}, 400, "INVALID_ARGUMENT", "input"),
        ({"input": []}, 400, "INVALID_ARGUMENT", "input"),
        ({"input": ["fine", "\u200b\u200b"]}, 400, "INVALID_ARGUMENT", "input"),
        ({"input": ["x"] * 257}, 400, "INVALID_ARGUMENT", "input"),
        ({"input": [[101, 2023]]}, 400, "INVALID_ARGUMENT", "input"),
        ({"input": ["a", 3]}, 400, "INVALID_ARGUMENT", "input"),
        ({"input": "a", "dimensions": 385}, 400, "INVALID_ARGUMENT", "dimensions"),
        ({"input": "a", "dimensions": 0}, 400, "INVALID_ARGUMENT", "dimensions"),
        ({"input": "a", "encoding_format": "int8"}, 400, "INVALID_ARGUMENT", "encoding_format"),
        ({"input": "a", "dimension": 8}, 400, "INVALID_ARGUMENT", "dimension"),
        ({"input": "a", "user": "u" * 257}, 400, "INVALID_ARGUMENT", "user"),
        ({"model": "minilm-onnx"}, 400, "INVALID_ARGUMENT", "input"),
        ({"input": "a", "model": "minilm-old"}, 409, "MODEL_DEPRECATED", "model"),
        ({"input": "a\ud800b"}, 400, "INVALID_ARGUMENT", None),
    ],
    ids=[
        "empty-text", "no-texts", "invisible-text", "too-many-texts", "token-ids", "not-a-string",
        "dimensions-above-the-model", "dimensions-zero", "unknown-encoding", "unknown-field", "long-user",
        "no-input", "deprecated-model", "lone-surrogate",
    ],
)  # fmt: skip
def test_a_bad_request_answers_the_openai_error_shape_naming_the_field(
    http: httpx.Client, body: dict[str, Any], status: int, code: str, param: str | None
) -> None:
    # json.dumps escapes what is not ASCII (a lone surrogate too), as a client's JSON encoder may.
    response = http.post("/v1/embeddings", content=json.dumps(body), headers={"content-type": "application/json"})

    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, param) and error["message"]


def test_a_body_that_is_not_json_is_a_400_not_a_422(http: httpx.Client) -> None:
    response = http.post("/v1/embeddings", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "INVALID_JSON"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_refused_with_413_while_it_is_read(http: httpx.Client, chunked: bool) -> None:
    payload = b'{"input": "' + b"a" * MAX_BODY + b'"}'
    content: Any = iter([payload[i : i + 16_384] for i in range(0, len(payload), 16_384)]) if chunked else payload
    response = http.post("/v1/embeddings", content=content, headers={"content-type": "application/json"})

    assert response.status_code == 413 and response.json()["error"]["code"] == "REQUEST_TOO_LARGE"


@pytest.mark.parametrize(
    ("authorization", "status"),
    [(None, 401), ("Bearer wrong", 401), (f"Basic {CLIENT}", 401), (f"Bearer {CLIENT}", 200), (f"bearer {ADMIN}", 200)],
    ids=["none", "wrong", "not-bearer", "client", "admin-lowercase-scheme"],
)
@pytest.mark.parametrize("path", ["/v1/models", "/info", "/metrics"])
def test_every_endpoint_but_the_probes_needs_a_token(
    base_url: str, path: str, authorization: str | None, status: int
) -> None:
    headers = {"authorization": authorization} if authorization else {}
    response = httpx.get(f"{base_url}{path}", headers=headers)

    assert response.status_code == status
    if status == 401:
        assert (
            response.json()["error"]["code"] == "UNAUTHENTICATED" and response.headers["www-authenticate"] == "Bearer"
        )


def test_the_openai_client_with_a_wrong_api_key_gets_an_authentication_error(base_url: str) -> None:
    wrong = openai.OpenAI(base_url=f"{base_url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.embeddings.create(model="default", input="genes")


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/", 404, "NOT_FOUND"),
        ("GET", "/v1/embedding", 404, "NOT_FOUND"),
        ("GET", "/health/", 404, "NOT_FOUND"),
        ("GET", "/v1/embeddings", 405, "METHOD_NOT_ALLOWED"),
        ("POST", "/metrics", 405, "METHOD_NOT_ALLOWED"),
    ],
)
def test_unknown_paths_are_404_and_wrong_methods_405_in_the_error_shape(
    http: httpx.Client, method: str, path: str, status: int, code: str
) -> None:
    response = http.request(method, path)
    assert response.status_code == status and response.json()["error"]["code"] == code


def test_a_request_whose_deadline_passed_is_not_computed(http: httpx.Client) -> None:
    response = http.post("/v1/embeddings", json={"input": "genes"}, headers={"x-rag-factory-timeout-s": "0.000001"})
    assert response.status_code == 504 and response.json()["error"]["code"] == "DEADLINE_EXCEEDED"

    bad = http.post("/v1/embeddings", json={"input": "genes"}, headers={"x-rag-factory-timeout-s": "soon"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "x-rag-factory-timeout-s"


def test_requests_beyond_the_concurrency_cap_are_refused_at_once_with_429(base_url: str, http: httpx.Client) -> None:
    # The cap is one request in flight: a long request holds it (once admitted) while short ones try.
    long_texts = [f"{i} " + "protein folding in the cytoplasm " * 40 for i in range(24)]
    done = threading.Event()

    def long_request() -> None:
        with httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {CLIENT}"}, timeout=120) as other:
            while other.post("/v1/embeddings", json={"input": long_texts}).status_code == 429:
                time.sleep(0.001)  # a short request held the one place; try again
        done.set()

    threading.Thread(target=long_request, daemon=True).start()
    refused = None
    while not done.is_set() and refused is None:
        response = http.post("/v1/embeddings", json={"input": "genes"})
        if response.status_code == 429:
            refused = response
        time.sleep(0.01)
    assert done.wait(120)

    assert refused is not None, "no short request was refused while the long one ran"
    error = refused.json()["error"]
    assert (error["code"], error["metadata"]["cause"]) == ("RESOURCE_EXHAUSTED", "too_many_requests")
    assert refused.headers["retry-after"] == "1"


def test_a_client_that_leaves_has_its_queued_work_dropped_uncomputed(
    sidecar: RunningSidecar, base_url: str, grpc_channel: grpc.Channel
) -> None:
    served: list[str] = []
    sidecar.services.engine.add_listener(lambda outcome, call: served.append(outcome.request_id))
    # A long gRPC request keeps the model busy; the HTTP request queues behind it, and its client leaves.
    long_texts = [f"{i} " + "protein folding in the cytoplasm " * 40 for i in range(24)]
    busy = threading.Thread(target=_grpc_embed, args=(grpc_channel, long_texts), kwargs={"request_id": "busy-1"})
    busy.start()
    time.sleep(0.3)
    payload = json.dumps({"input": "genes"}).encode()
    head = (
        f"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {CLIENT}\r\n"
        f"Content-Type: application/json\r\nx-request-id: gone-1\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", int(base_url.rsplit(":", 1)[1]))) as leaving:
        leaving.sendall(head.encode() + payload)
        time.sleep(0.2)
    busy.join(120)
    time.sleep(0.5)  # a request that was not dropped would be served by now

    assert "busy-1" in served and "gone-1" not in served


# -- probes, models, info, metrics --------------------------------------------------------------------


def test_health_and_ready_are_open_and_say_only_a_state(base_url: str) -> None:
    assert httpx.get(f"{base_url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{base_url}/ready")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "status": "SERVING", "reason": "serving"}  # no model names: it is open


def test_models_lists_the_default_the_aliases_and_the_servable_ids(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]

    assert ids[0] == "default" and {"minilm@production", "minilm-onnx", "minilm-onnx-int8"} <= set(ids)
    assert "minilm-old" not in ids  # deprecated: it cannot serve


def test_info_reports_the_server_and_its_loaded_models(http: httpx.Client) -> None:
    info = http.get("/info").json()

    assert info["default_model"] == "minilm-onnx" and info["ready"] is True and info["ab_testing_enabled"] is True
    loaded = {model["model_id"]: model for model in info["loaded_models"]}
    assert loaded["minilm-onnx"]["dimensions"] == 384 and info["limits"]["max_body_bytes"] == MAX_BODY


def test_metrics_are_prometheus_text_on_their_own_path(http: httpx.Client) -> None:
    http.post("/v1/embeddings", json={"input": "genes"})
    response = http.get("/metrics")

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "rag_factory_embed_requests" in response.text
    assert http.get("/").status_code == 404  # unlike a bare Prometheus port, no other path answers metrics


# -- a sidecar that is not ready, over TLS; start and stop ---------------------------------------------


def _cheap_sidecar(tmp_path: Path, **overrides: Any) -> tuple[grpc.Server, Any]:
    """A sidecar whose default model does not exist: it starts at once and never becomes ready."""
    settings = SidecarSettings.model_validate(
        {
            "address": "127.0.0.1:0",
            "http_address": "127.0.0.1:0",
            "load_entry_point_plugins": False,
            "models": {
                "embedding": {
                    "default_model_id": "missing",
                    "registry_path": str(tmp_path / "registry"),
                    "cache_dir": str(tmp_path / "cache"),
                }
            },
            **overrides,
        }
    )
    services = build_services(settings)
    try:
        server, _ = build_server(settings, services)
    except BaseException:
        services.close()
        raise
    return server, services


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_over_tls_ready_is_503_with_the_reason_while_the_default_model_cannot_load(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    server, services = _cheap_sidecar(tmp_path, tls={"cert_file": str(cert), "key_file": str(key)})
    try:
        base = f"https://127.0.0.1:{services.http_port}"
        trusted = ssl.create_default_context(cafile=str(cert))
        deadline = time.monotonic() + 30
        while (ready := httpx.get(f"{base}/ready", verify=trusted)).json()["reason"].startswith("starting"):
            assert time.monotonic() < deadline
            time.sleep(0.05)

        assert ready.status_code == 503 and ready.json()["ready"] is False
        # /ready is open to anyone: a fixed line, no exception text (paths, model ids); /info has the detail.
        assert ready.json()["reason"] == "the default model cannot serve; the server log and /info say why"
        info = httpx.get(f"{base}/info", verify=trusted).json()
        assert info["ready"] is False and "'missing' is not registered" in info["ready_reason"]
        assert httpx.get(f"{base}/health", verify=trusted).status_code == 200
        with pytest.raises(httpx.HTTPError):  # plain HTTP to the TLS port
            httpx.get(f"http://127.0.0.1:{services.http_port}/health")
    finally:
        server.stop(None).wait()
        services.close()


def test_stopping_the_sidecar_stops_http_and_a_taken_port_fails_the_start(tmp_path: Path) -> None:
    server, services = _cheap_sidecar(tmp_path)
    port = services.http_port
    assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="http_address"):
            _cheap_sidecar(Path(tempfile.mkdtemp(dir=tmp_path)), http_address=f"127.0.0.1:{taken.getsockname()[1]}")

    server.stop(None).wait()
    services.close()
    deadline = time.monotonic() + 10  # services.close() may still be running in the server's closer thread
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
        except httpx.ConnectError:
            return
        time.sleep(0.05)
    pytest.fail("the HTTP port still answers after the sidecar stopped")

"""Serving behaviour: micro-batching, a bounded queue, strict or opt-in fallback, metrics, hooks, auth and stale stubs."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from rag_factory.hooks import EmbeddingEvent, hookimpl
from rag_factory_contract.v1 import embedding_pb2, embedding_pb2_grpc

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _stub(address: str) -> tuple[grpc.Channel, embedding_pb2_grpc.EmbeddingServiceStub]:
    channel = grpc.insecure_channel(address)
    return channel, embedding_pb2_grpc.EmbeddingServiceStub(channel)


def _concurrently(calls: int, call: Callable[[int], object]) -> list[object]:
    results: list[object] = [None] * calls
    barrier = threading.Barrier(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call(i)
        except grpc.RpcError as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_requests_share_forward_passes(
    private_registry_path: Path, sidecar_factory: Callable[..., object]
) -> None:
    sidecar = sidecar_factory(private_registry_path, batching={"max_wait_ms": 50, "max_batch_texts": 64})
    channel, stub = _stub(sidecar.address)  # type: ignore[attr-defined]
    with channel:
        responses = _concurrently(8, lambda i: stub.Embed(embedding_pb2.EmbedRequest(texts=[f"text {i}"]), timeout=30))
    batch_sizes = [r.timings.batch_texts for r in responses]  # type: ignore[union-attr]
    assert max(batch_sizes) > 1, batch_sizes
    assert all(r.count == 1 for r in responses)  # type: ignore[union-attr]


def test_a_full_queue_answers_resource_exhausted(
    private_registry_path: Path, sidecar_factory: Callable[..., object]
) -> None:
    sidecar = sidecar_factory(
        private_registry_path, batching={"max_wait_ms": 300, "max_batch_texts": 1, "queue_capacity": 1}
    )
    channel, stub = _stub(sidecar.address)  # type: ignore[attr-defined]
    long_texts = ["a rather long scientific abstract about protein folding " * 20] * 16
    with channel:
        results = _concurrently(12, lambda i: stub.Embed(embedding_pb2.EmbedRequest(texts=long_texts), timeout=60))
    codes = [r.code() for r in results if isinstance(r, grpc.RpcError)]
    assert codes and set(codes) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert any(isinstance(r, embedding_pb2.EmbedResponse) for r in results)


def _embed_failure(address: str, request: embedding_pb2.EmbedRequest) -> tuple[grpc.StatusCode, str, str]:
    """The status code, ErrorInfo reason and message of a failed Embed call."""
    channel, stub = _stub(address)
    with channel, pytest.raises(grpc.RpcError) as caught:
        stub.Embed(request, timeout=30)
    status = rpc_status.from_call(caught.value)
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    return caught.value.code(), info.reason, status.message


def test_a_model_that_fails_to_load_is_refused_naming_both_models(damaged_sidecar: object) -> None:
    code, reason, message = _embed_failure(
        damaged_sidecar.address,  # type: ignore[attr-defined]
        embedding_pb2.EmbedRequest(texts=["hello"], model="ft@1.1.0"),
    )

    assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "FALLBACK_REFUSED")
    assert "'ft@1.1.0' (ft-1.1.0, ft@1.1.0) failed" in message
    assert "the default model 'minilm-onnx'" in message and "allow_fallback" in message
    exposition = damaged_sidecar.services.metrics.exposition().decode()  # type: ignore[attr-defined]
    assert (
        'rag_factory_embed_requests_total{model_id="ft-1.1.0",reason="FALLBACK_REFUSED",status="error",variant="",'
        'version="1.1.0"} 1.0'
    ) in exposition
    # Nothing was served, by the default model or any other.
    assert 'status="ok"' not in exposition and "rag_factory_fallbacks_total{" not in exposition


def test_a_model_that_fails_to_load_falls_back_to_the_base_model_when_the_request_allows_it(
    damaged_sidecar: object,
) -> None:
    channel, stub = _stub(damaged_sidecar.address)  # type: ignore[attr-defined]
    with channel:
        request = embedding_pb2.EmbedRequest(texts=["hello"], model="ft@1.1.0", allow_fallback=True)
        response = stub.Embed(request, timeout=30)
    served = response.served_by
    assert served.fallback and served.model_id == "minilm-onnx" and served.requested_model == "ft@1.1.0"
    assert "ModelLoadError" in served.fallback_reason
    exposition = damaged_sidecar.services.metrics.exposition().decode()  # type: ignore[attr-defined]
    assert (
        'rag_factory_fallbacks_total{failed_model_id="ft-1.1.0",reason="MODEL_LOAD_FAILED",served_model_id="minilm-onnx"} 1.0'
        in exposition
    )


def test_prometheus_metrics_count_requests_latency_and_batches(running_sidecar: object, channel: grpc.Channel) -> None:
    embedding_pb2_grpc.EmbeddingServiceStub(channel).Embed(embedding_pb2.EmbedRequest(texts=["x", "y"]), timeout=30)
    text = running_sidecar.services.metrics.exposition().decode()  # type: ignore[attr-defined]
    assert (
        'rag_factory_embed_requests_total{model_id="minilm-onnx",reason="",status="ok",variant="",version="1.0.0"}'
        in text
    )
    assert (
        'rag_factory_embed_latency_seconds_bucket{le="0.1",model_id="minilm-onnx",variant="",version="1.0.0"}' in text
    )
    assert "rag_factory_batch_texts_count" in text and "rag_factory_queue_depth" in text


class Recorder:
    """A real plugin object: records observed calls and expands 'MI' in the 'cardiology' domain."""

    def __init__(self) -> None:
        self.events: list[EmbeddingEvent] = []

    @hookimpl
    def rag_factory_on_embedding(self, event: EmbeddingEvent) -> None:
        self.events.append(event)

    @hookimpl
    def rag_factory_preprocess_texts(self, texts: list[str], domain: str) -> list[str] | None:
        return [t.replace("MI", "myocardial infarction") for t in texts] if domain == "cardiology" else None


def test_sidecar_hooks_preprocess_and_observe(private_registry_path: Path, model_cache_dir: Path) -> None:
    from sidecar.server import build_server, build_services
    from sidecar.settings import SidecarSettings

    recorder = Recorder()
    settings = SidecarSettings.model_validate(
        {
            "address": "127.0.0.1:0",
            "http_address": None,  # these tests use gRPC only; 8080 may be taken
            "load_entry_point_plugins": False,
            "models": {
                "embedding": {
                    "default_model_id": "minilm-onnx",
                    "registry_path": str(private_registry_path),
                    "cache_dir": str(model_cache_dir),
                }
            },
        }
    )
    services = build_services(settings, plugins=(recorder,))
    server, port = build_server(settings, services)
    try:
        assert services.ready.wait(60)
        channel, stub = _stub(f"127.0.0.1:{port}")
        with channel:
            plain = stub.Embed(embedding_pb2.EmbedRequest(texts=["MI  risk"]), timeout=30)
            expanded = stub.Embed(embedding_pb2.EmbedRequest(texts=["MI  risk"], domain="cardiology"), timeout=30)
            spelled = stub.Embed(embedding_pb2.EmbedRequest(texts=["myocardial infarction risk"]), timeout=30)
    finally:
        server.stop(None).wait()
    vec = lambda r: np.frombuffer(r.packed, dtype="<f4")  # noqa: E731
    # The domain plugin ran before the default whitespace normalisation, which it overrides.
    assert np.allclose(vec(expanded), vec(spelled), atol=1e-5)
    assert not np.allclose(vec(plain), vec(spelled), atol=1e-3)
    observed = [e for e in recorder.events if e.side == "sidecar"]
    assert len(observed) == 3 and observed[0].model_id == "minilm-onnx" and observed[0].count == 1
    assert observed[0].latency_ms > 0 and observed[0].version == "1.0.0"


def test_token_auth_refuses_calls_without_the_token(
    private_registry_path: Path, sidecar_factory: Callable[..., object]
) -> None:
    sidecar = sidecar_factory(private_registry_path, auth_token="s3cret")
    channel, stub = _stub(sidecar.address)  # type: ignore[attr-defined]
    with channel:
        with pytest.raises(grpc.RpcError) as caught:
            stub.Embed(embedding_pb2.EmbedRequest(texts=["x"]), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok = stub.Embed(
            embedding_pb2.EmbedRequest(texts=["x"]), timeout=10, metadata=[("authorization", "Bearer s3cret")]
        )
        assert ok.count == 1


def test_generated_stubs_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr

"""Benchmark the sidecar against in-process calls of the same backend, concurrency, and start-up time.

Run:  .venv/bin/python benchmarks/bench_sidecar.py [--data ../shared/data/scifact]

The sidecar runs as a real separate process (`rag-factory serve`) on 127.0.0.1; the client uses
packed float32 vectors. Everything is measured in this one run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from rag_factory.data import bundled_dataset  # noqa: E402
from rag_factory.data.beir import load_beir  # noqa: E402
from rag_factory_contract.v1 import embedding_pb2, embedding_pb2_grpc  # noqa: E402

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sidecar(registry: Path, cache: Path, batching: dict[str, object]) -> tuple[subprocess.Popen[str], str, float]:
    """Start `rag-factory serve`; return the process, its address and seconds until SERVING."""
    port = _free_port()
    config = Path(tempfile.mkdtemp()) / "sidecar.yaml"
    config.write_text(
        json.dumps(
            {
                "address": f"127.0.0.1:{port}",
                "http_address": None,  # these tests use gRPC only; 8080 may be taken
                "load_entry_point_plugins": False,
                "batching": batching,
                "models": {
                    "embedding": {
                        "default_model_id": "minilm-int8",
                        "registry_path": str(registry),
                        "cache_dir": str(cache),
                    }
                },
            }
        )
    )
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "rag_factory.cli", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    address = f"127.0.0.1:{port}"
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
            if process.poll() is not None:
                raise RuntimeError("the sidecar exited during start-up")
            time.sleep(0.02)
    return process, address, time.perf_counter() - started


def time_calls(call: object, batches: list[list[str]], repeats: int) -> float:
    """Median seconds per call over ``repeats`` passes through ``batches``."""
    assert callable(call)
    for batch in batches[:3]:
        call(batch)
    samples = []
    for _ in range(repeats):
        for batch in batches:
            started = time.perf_counter()
            call(batch)
            samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def concurrent_throughput(address: str, texts: list[str], clients: int, per_client: int) -> float:
    """Texts per second with ``clients`` threads each sending single-text requests."""
    channel = grpc.insecure_channel(address)
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)  # type: ignore[no-untyped-call]
    stub.Embed(embedding_pb2.EmbedRequest(texts=texts[:1]), timeout=30)
    barrier = threading.Barrier(clients + 1)

    def client(offset: int) -> None:
        barrier.wait()
        for i in range(per_client):
            stub.Embed(embedding_pb2.EmbedRequest(texts=[texts[(offset + i) % len(texts)]]), timeout=60)

    threads = [threading.Thread(target=client, args=(c * per_client,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    channel.close()
    return clients * per_client / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/scifact")
    parser.add_argument("--json", default="benchmarks/results/sidecar.json")
    args = parser.parse_args()
    data = Path(args.data) if Path(args.data).is_dir() else bundled_dataset("scifact_mini")
    dataset = load_beir(data)
    rng = random.Random(0)
    queries = [dataset.queries[q] for q in dataset.split("test")]
    docs = [d.as_text() for d in rng.sample(list(dataset.corpus.values()), 256)]

    from rag_factory.models.embedding import CustomModelLoader, EmbeddingModelMetadata, ModelRegistry
    from rag_factory.models.embedding.hub import resolve_model_path
    from rag_factory.models.embedding.onnx_export import export_onnx

    work = Path(tempfile.mkdtemp(prefix="rf-bench-sidecar-"))
    onnx_dir = export_onnx(resolve_model_path(MINILM), work / "onnx")
    registry = ModelRegistry(work / "registry")
    registry.register_model(
        EmbeddingModelMetadata(
            model_id="minilm-int8",
            model_name="minilm",
            version="1.0.0",
            format="onnx",
            embedding_dim=384,
            max_seq_length=256,
        ),
        artifact_path=onnx_dir,
        load_config={"quantization": "int8"},
    )
    _, local = registry.load_model("minilm-int8", CustomModelLoader(cache_dir=work / "cache"))

    results: dict[str, object] = {}
    process, address, startup_s = start_sidecar(work / "registry", work / "cache", {"max_wait_ms": 2})
    results["start_to_serving_s"] = startup_s
    channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 16 * 1024 * 1024)])
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)  # type: ignore[no-untyped-call]

    def remote(batch: list[str]) -> np.ndarray:
        response = stub.Embed(embedding_pb2.EmbedRequest(texts=batch), timeout=60)
        return np.frombuffer(response.packed, dtype="<f4").reshape(response.count, response.dimension)

    overhead = {}
    for label, texts, size in (
        ("queries, batch 1", queries, 1),
        ("queries, batch 32", queries, 32),
        ("documents, batch 32", docs, 32),
    ):
        batches = [texts[i : i + size] for i in range(0, min(len(texts), 8 * size if size > 1 else 200), size)]
        in_process = time_calls(local.encode, batches, repeats=3)
        via_sidecar = time_calls(remote, batches, repeats=3)
        overhead[label] = {
            "in_process_ms": in_process * 1e3,
            "sidecar_ms": via_sidecar * 1e3,
            "overhead_pct": (via_sidecar / in_process - 1) * 100,
        }
    assert np.allclose(remote(queries[:4]), local.encode(queries[:4]), atol=1e-6)
    results["overhead"] = overhead
    results["concurrent_8_clients_microbatching_texts_per_s"] = concurrent_throughput(address, queries, 8, 40)
    channel.close()
    process.terminate()
    process.wait(30)
    process, address, _ = start_sidecar(work / "registry", work / "cache", {"max_wait_ms": 0, "max_batch_texts": 1})
    results["concurrent_8_clients_no_batching_texts_per_s"] = concurrent_throughput(address, queries, 8, 40)
    process.terminate()
    process.wait(30)

    print(f"\nmachine: {os.cpu_count()} CPUs; backend: ONNX int8 MiniLM; client and sidecar on 127.0.0.1\n")
    print(f"start to SERVING (fresh process, ONNX default model): {startup_s:.2f} s\n")
    print("| call | in-process (median) | through the sidecar (median) | overhead |")
    print("|---|---|---|---|")
    for label, row in overhead.items():
        print(f"| {label} | {row['in_process_ms']:.2f} ms | {row['sidecar_ms']:.2f} ms | {row['overhead_pct']:+.1f}% |")
    print("\n| 8 concurrent clients, 1 text per request | texts/s |")
    print("|---|---|")
    print(f"| micro-batching on (max_wait 2 ms) | {results['concurrent_8_clients_microbatching_texts_per_s']:.0f} |")
    no_batching = results["concurrent_8_clients_no_batching_texts_per_s"]
    print(f"| micro-batching off (1 text per forward pass) | {no_batching:.0f} |")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

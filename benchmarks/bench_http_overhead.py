"""Benchmark the HTTP API against gRPC and in-process calls of the same model, in one run.

Run:  .venv/bin/python benchmarks/bench_http_overhead.py [--rounds 3]

One `rag-factory serve` process on 127.0.0.1 serves both surfaces from one engine (ONNX fp32 MiniLM); the
benchmark process loads the same export in-process. Every batch is sent through every path in turn, in an
order that rotates each round, so that a noisy neighbour slows all paths alike. Paths:

- in-process: ``model.encode(batch)`` in this process (no server, no batcher);
- gRPC: ``EmbeddingService.Embed`` with packed float32 vectors;
- HTTP base64: ``POST /v1/embeddings`` with ``encoding_format=base64`` over a kept-alive httpx connection;
- HTTP float: the same with JSON numbers;
- openai client: the official client (base64, its default), vectors decoded into lists as it returns them.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import grpc  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402
import openai  # noqa: E402

from rag_factory.data import bundled_dataset  # noqa: E402
from rag_factory.data.beir import load_beir  # noqa: E402
from rag_factory_contract.v1 import embedding_pb2, embedding_pb2_grpc  # noqa: E402

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
Call = Callable[[list[str]], np.ndarray]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sidecar(registry: Path, cache: Path) -> tuple[subprocess.Popen[str], str, str, float]:
    """Start `rag-factory serve` with gRPC and HTTP; return it, both addresses and seconds until /ready is 200."""
    grpc_address, http_address = f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"
    config = Path(tempfile.mkdtemp()) / "sidecar.yaml"
    config.write_text(
        json.dumps(
            {
                "address": grpc_address,
                "http_address": http_address,
                "load_entry_point_plugins": False,
                "models": {
                    "embedding": {
                        "default_model_id": "minilm-onnx",
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
    while True:
        try:
            if httpx.get(f"http://{http_address}/ready", timeout=0.5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError("the sidecar exited during start-up")
        time.sleep(0.02)
    return process, grpc_address, http_address, time.perf_counter() - started


def interleaved(calls: dict[str, Call], batches: list[list[str]], rounds: int) -> dict[str, float]:
    """Median seconds per call of each path; each batch goes through every path in a rotating order."""
    names = list(calls)
    for name in names:  # warm up every path (connections, the batcher, the model's first passes)
        for batch in batches[:3]:
            calls[name](batch)
    samples: dict[str, list[float]] = {name: [] for name in names}
    turn = 0
    for _ in range(rounds):
        for batch in batches:
            order = names[turn % len(names) :] + names[: turn % len(names)]
            turn += 1
            for name in order:
                started = time.perf_counter()
                calls[name](batch)
                samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="passes through the batches of each row")
    parser.add_argument("--json", default="", help="also write the figures to this file")
    args = parser.parse_args()
    dataset = load_beir(bundled_dataset("scifact_mini"))
    queries = list(dataset.queries.values())
    documents = [document.as_text() for document in dataset.corpus.values()]

    from rag_factory.models.embedding import CustomModelLoader, EmbeddingModelMetadata, ModelRegistry
    from rag_factory.models.embedding.hub import resolve_model_path
    from rag_factory.models.embedding.onnx_export import export_onnx

    work = Path(tempfile.mkdtemp(prefix="rf-bench-http-"))
    onnx_dir = export_onnx(resolve_model_path(MINILM), work / "onnx")
    registry = ModelRegistry(work / "registry")
    metadata = EmbeddingModelMetadata(
        model_id="minilm-onnx",
        model_name="minilm",
        version="1.0.0",
        format="onnx",
        embedding_dim=384,
        max_seq_length=256,
    )
    registry.register_model(metadata, artifact_path=onnx_dir)
    _, local = registry.load_model("minilm-onnx", CustomModelLoader(cache_dir=work / "cache"))
    registry.close()

    process, grpc_address, http_address, startup_s = start_sidecar(work / "registry", work / "cache")
    channel = grpc.insecure_channel(grpc_address, options=[("grpc.max_receive_message_length", 16 * 1024 * 1024)])
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)  # type: ignore[no-untyped-call]
    http = httpx.Client(base_url=f"http://{http_address}", timeout=60)
    client = openai.OpenAI(base_url=f"http://{http_address}/v1", api_key="unused", max_retries=0)

    def via_grpc(batch: list[str]) -> np.ndarray:
        response = stub.Embed(embedding_pb2.EmbedRequest(texts=batch), timeout=60)
        return np.frombuffer(response.packed, dtype="<f4").reshape(response.count, response.dimension)

    def via_http_base64(batch: list[str]) -> np.ndarray:
        response = http.post("/v1/embeddings", json={"input": batch, "encoding_format": "base64"})
        data = response.json()["data"]
        return np.stack([np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4") for item in data])

    def via_http_float(batch: list[str]) -> np.ndarray:
        response = http.post("/v1/embeddings", json={"input": batch, "encoding_format": "float"})
        return np.array([item["embedding"] for item in response.json()["data"]], dtype=np.float32)

    def via_openai(batch: list[str]) -> np.ndarray:
        response = client.embeddings.create(model="default", input=batch)
        return np.array([item.embedding for item in response.data], dtype=np.float32)

    calls: dict[str, Call] = {
        "in-process": local.encode,
        "gRPC": via_grpc,
        "HTTP base64": via_http_base64,
        "HTTP float": via_http_float,
        "openai client": via_openai,
    }
    sample = queries[:4]
    for name, call in calls.items():  # every path gives the same vectors
        cosines = np.sum(call(sample) * local.encode(sample), axis=1)
        if not np.all(cosines >= 0.9999):
            raise RuntimeError(f"{name} gives other vectors than in-process (cosines {cosines})")

    rows = {
        "queries, batch 1": interleaved(calls, [[q] for q in queries[:60]], args.rounds),
        "queries, batch 32": interleaved(calls, [queries[i : i + 32] for i in range(0, 32 * 6, 32)], args.rounds),
        "documents, batch 32": interleaved(calls, [documents[i : i + 32] for i in range(0, 32 * 3, 32)], 1),
    }
    http.close()
    channel.close()
    process.terminate()
    process.wait(30)

    print(f"\nmachine: {os.cpu_count()} CPUs; ONNX fp32 MiniLM; client and sidecar on 127.0.0.1; one sidecar process")
    print(f"start to /ready 200 (fresh process, ONNX default model): {startup_s:.2f} s\n")
    names = list(calls)
    print("| call | " + " | ".join(names) + " | HTTP base64 vs gRPC |")
    print("|---|" + "---|" * (len(names) + 1))
    for label, medians in rows.items():
        cells = " | ".join(f"{medians[name] * 1e3:.2f} ms" for name in names)
        extra = (medians["HTTP base64"] - medians["gRPC"]) * 1e3
        print(f"| {label} | {cells} | {extra:+.2f} ms ({(medians['HTTP base64'] / medians['gRPC'] - 1) * 100:+.1f}%) |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"start_to_ready_s": startup_s, "median_s": rows}, indent=2))


if __name__ == "__main__":
    main()

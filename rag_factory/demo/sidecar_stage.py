"""Demo stage: start the real sidecar, build a LlamaIndex index through the plugin, and query it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rag_factory.demo.context import DemoContext, section
from rag_factory.errors import UnavailableError


def _announced(log: Path, prefix: str) -> str | None:
    # `rag-factory serve` prints "listening on HOST:PORT" (and "http listening on HOST:PORT") once bound.
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return next((line.removeprefix(prefix).strip() for line in lines if line.startswith(prefix)), None)


@contextmanager
def running_sidecar(ctx: DemoContext, model: str | None = None) -> Iterator[str]:
    """Run `rag-factory serve` on free loopback ports until the block ends (then SIGTERM).

    The one-command start of the README: no default model configured (the untouched default, ``minilm``,
    names the version stage 1 registered as minilm@production), ports picked by the server and read from
    what it prints. The settings file only points at the demo's registry and cache and checks experiments
    every half second (the A/B stage ramps within seconds).
    """
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    config = ctx.workdir / "sidecar.yaml"
    # JSON is valid YAML; the layout is SPEC §4's.
    config.write_text(json.dumps({
        "models": {"embedding": {"registry_path": str(ctx.registry.path), "cache_dir": str(ctx.workdir / "cache"),
                                 "ab_testing": {"tick_interval_s": 0.5}}},
    }, indent=2))  # fmt: skip
    log_path = ctx.workdir / "sidecar.log"
    log = log_path.open("w")
    started = time.perf_counter()
    command = [
        sys.executable,
        "-m",
        "rag_factory.cli",
        "serve",
        "--config",
        str(config),
        "--address",
        "127.0.0.1:0",
        "--http-address",
        "127.0.0.1:0",
        *(["--model", model] if model else []),
    ]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        while (address := _announced(log_path, "listening on ")) is None:
            if process.poll() is not None or time.perf_counter() - started > 120:
                # A start-up failure is one line, "error (REASON): ...", the log's last.
                last = (log_path.read_text(errors="replace").strip().splitlines() or [""])[-1]
                raise UnavailableError(f"the sidecar did not start: {last[:300]} (log: {log_path})")
            time.sleep(0.1)
        with grpc.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                if process.poll() is not None or time.perf_counter() - started > 120:
                    raise UnavailableError(f"the sidecar did not start; see {log_path}")
                time.sleep(0.1)
        http = _announced(log_path, "http listening on ")
        print(f"sidecar SERVING on {address} (gRPC)" + (f" and http://{http} (HTTP)" if http else "")
              + f" after {time.perf_counter() - started:.1f} s (log: sidecar.log)")  # fmt: skip
        ctx.sidecar_address = address
        ctx.sidecar_http_address = http or ""
        yield address
    finally:
        process.terminate()
        process.wait(60)
        log.close()


def llama_index_through_the_sidecar(ctx: DemoContext) -> None:
    """Index SciFact documents with RagFactoryEmbedding and show which model answered each query."""
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode

    from plugin import MODEL_ID_KEY, MODEL_VERSION_KEY, RagFactoryEmbedding, assert_single_vector_space

    section("5. LlamaIndex through the sidecar (plugin: RagFactoryEmbedding, pinned to one version)")
    dataset = ctx.dataset
    test = dataset.split("test")
    relevant = {d for docs in test.values() for d in docs}
    doc_ids = sorted(relevant) + [d for d in dataset.corpus if d not in relevant][: 300 - len(relevant)]
    ctx.nodes = [TextNode(id_=d, text=dataset.corpus[d].as_text()) for d in doc_ids]
    # The application follows the "staging" alias; stage 8 moves it under this index.
    ctx.registry.set_alias("minilm", "staging", ctx.models["base"])
    # Pinned: "minilm@staging" is resolved once to an exact version, which embeds the documents and every
    # later query of this index, whatever the alias does. Strict: should that version fail, the call
    # raises FallbackRefusedError rather than return the default model's vectors (another vector space).
    embed_model = RagFactoryEmbedding(
        address=ctx.sidecar_address, model="minilm@staging", embed_batch_size=64, timeout_s=120
    )
    started = time.perf_counter()
    ctx.index = VectorStoreIndex(ctx.nodes, embed_model=embed_model)
    print(f"embedded {len(ctx.nodes)} nodes through the sidecar in {time.perf_counter() - started:.1f} s; "
          f"every node stamped with model {assert_single_vector_space(ctx.nodes)}; "
          f"index pinned to {embed_model.pinned_model()}")  # fmt: skip
    retriever = ctx.index.as_retriever(similarity_top_k=5)
    for qid in list(test)[:4]:
        hits = retriever.retrieve(dataset.queries[qid])
        served = embed_model.last_served_by
        found = any(hit.node.node_id in test[qid] for hit in hits)
        stamp = f"{hits[0].node.metadata[MODEL_ID_KEY]}@{hits[0].node.metadata[MODEL_VERSION_KEY]}"
        print(f"query {qid:>5}: served by {served.model_id if served else '?'} v{served.version if served else '?'} "
              f"| nodes stamped {stamp} | relevant doc in top 5: {'yes' if found else 'no'} "
              f"| {dataset.queries[qid][:60]}")  # fmt: skip
    if ctx.sidecar_http_address:
        _same_vectors_over_http(ctx, embed_model, dataset.queries[next(iter(test))])


def _same_vectors_over_http(ctx: DemoContext, embed_model: Any, query: str) -> None:
    """Embed one query through the OpenAI-format HTTP API (as any OpenAI client would) and compare with gRPC."""
    import urllib.request

    import numpy as np

    reference = embed_model.pinned_model().reference
    body = json.dumps({"input": [query], "model": reference}).encode()
    request = urllib.request.Request(
        f"http://{ctx.sidecar_http_address}/v1/embeddings", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        served = response.headers.get("x-rag-factory-model-id", "?")
        over_http = np.array(json.load(response)["data"][0]["embedding"], dtype=np.float32)
    over_grpc = np.array(embed_model.get_query_embedding(query), dtype=np.float32)
    cosine = float(over_http @ over_grpc / (np.linalg.norm(over_http) * np.linalg.norm(over_grpc)))
    print(f"POST http://{ctx.sidecar_http_address}/v1/embeddings (OpenAI format, model {reference}): "
          f"served by {served}, cosine to the gRPC vector {cosine:.6f}")  # fmt: skip

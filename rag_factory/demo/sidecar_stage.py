"""Demo stage: start the real sidecar, build a LlamaIndex index through the plugin, and query it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rag_factory.demo.context import DemoContext, section
from rag_factory.errors import UnavailableError


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_sidecar(ctx: DemoContext, default_model: str = "minilm") -> Iterator[str]:
    """Run `rag-factory serve` on a free loopback port until the block ends (then SIGTERM)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    port = _free_port()
    config = ctx.workdir / "sidecar.yaml"
    # JSON is valid YAML; the layout is SPEC §4's.
    config.write_text(json.dumps({
        "address": f"127.0.0.1:{port}",
        "models": {"embedding": {"default_model_id": default_model, "registry_path": str(ctx.registry.path),
                                 "cache_dir": str(ctx.workdir / "cache"), "ab_testing": {"tick_interval_s": 0.5}}},
    }, indent=2))  # fmt: skip
    log = (ctx.workdir / "sidecar.log").open("w")
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "rag_factory.cli", "serve", "--config", str(config)],
                               stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    address = f"127.0.0.1:{port}"
    try:
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
                    raise UnavailableError(f"the sidecar did not start; see {ctx.workdir / 'sidecar.log'}")
                time.sleep(0.1)
        print(f"sidecar SERVING on {address} after {time.perf_counter() - started:.1f} s (log: sidecar.log)")
        ctx.sidecar_address = address
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

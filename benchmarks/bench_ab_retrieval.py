"""Benchmark A/B retrieval (issue 17): shadow-indexing throughput and the A/B retriever's added latency per query.

Run:  .venv/bin/python benchmarks/bench_ab_retrieval.py

Everything is measured in this one run, on the bundled SciFact subset (all 1,023 documents) and 200
SciFact test queries, against baselines timed on the same texts in the same run:

1. Shadow indexing: docs/s of ``build_pinned_index`` (in-memory store, and Qdrant local mode with a
   checkpoint file) against plain in-process sentence-transformers and plain sidecar embedding.
2. Retrieval: p50/p95 ms per query of ``ABRetriever.retrieve_routed`` (no experiment, and an experiment
   held at 50 %) against a plain LlamaIndex retriever over the same pinned index and sidecar.

The sidecar runs in this process, as the tests start it (``build_services`` + ``build_server`` on
127.0.0.1), so client and server share the interpreter and the machine's cores. It serves fp32 ONNX
MiniLM; the sentence-transformers baseline runs the same weights on torch, another backend.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from llama_index.core.schema import MetadataMode, TextNode  # noqa: E402

from plugin import ABRetriever, PinnedIndex, RagFactoryEmbedding, build_pinned_index  # noqa: E402
from plugin.client import RagFactoryClient  # noqa: E402
from rag_factory.data import bundled_dataset  # noqa: E402
from rag_factory.data.beir import BeirDataset, load_beir  # noqa: E402
from rag_factory.models.embedding import EmbeddingModelMetadata, ModelRegistry  # noqa: E402
from sidecar.server import SidecarServices, build_server, build_services  # noqa: E402
from sidecar.settings import SidecarSettings  # noqa: E402

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
ROOT = Path(__file__).resolve().parents[1]
TEST_QUERIES = ROOT / "tests" / "data" / "scifact_test_queries.jsonl"
REPEATS = 2  # full-corpus passes per throughput measure; the best is reported
QUERIES = 200
WARMUP_QUERIES = 5
TOP_K = 10
MAX_QUIET_LOAD = 1.5
# Ramps never advance and no guardrail has enough data: the split stays at 50 % for the whole run.
HOLD_AT_HALF: dict[str, Any] = {"steps": [0.5, 1.0], "min_samples_per_step": 1_000_000, "min_step_duration_s": 3600.0}


# -- machine -------------------------------------------------------------------------------------


def load_line(when: str) -> tuple[float, float, float]:
    """Print and return the 1/5/15-minute load averages."""
    load = os.getloadavg()
    print(f"[{when}] load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min), {os.cpu_count()} CPUs")
    return load


def wait_until_quiet(tries: int = 3, pause_s: float = 60.0) -> list[float]:
    """Wait (up to ``tries`` pauses) while the 1-minute load exceeds ``MAX_QUIET_LOAD``; return the loads seen."""
    seen = [os.getloadavg()[0]]
    for _ in range(tries):
        if seen[-1] <= MAX_QUIET_LOAD:
            break
        print(f"1-minute load {seen[-1]:.2f} > {MAX_QUIET_LOAD}: waiting {pause_s:.0f} s")
        time.sleep(pause_s)
        seen.append(os.getloadavg()[0])
    return seen


# -- sidecar -------------------------------------------------------------------------------------


@dataclass
class Sidecar:
    """An in-process sidecar and what it needs to be stopped."""

    address: str
    server: Any
    services: SidecarServices

    def stop(self) -> None:
        self.server.stop(grace=2).wait()
        self.services.close()


def make_registry(work: Path) -> Path:
    """minilm-onnx 1.0.0 (fp32 ONNX, mean pooling, alias production) and minilm-onnx-cls 2.0.0 (CLS pooling)."""
    from rag_factory.models.embedding.hub import resolve_model_path
    from rag_factory.models.embedding.onnx_export import export_onnx

    onnx_dir = export_onnx(resolve_model_path(MINILM), work / "onnx")
    path = work / "registry"
    registry = ModelRegistry(path)
    common: dict[str, Any] = {"model_name": "minilm", "format": "onnx", "embedding_dim": 384, "max_seq_length": 256}
    registry.register_model(
        EmbeddingModelMetadata(model_id="minilm-onnx", version="1.0.0", description="fp32 ONNX", **common),
        artifact_path=onnx_dir,
    )
    registry.register_model(
        EmbeddingModelMetadata(model_id="minilm-onnx-cls", version="2.0.0", description="CLS pooling", **common),
        artifact_path=onnx_dir,
        load_config={"pooling_strategy": "cls"},
    )
    registry.set_alias("minilm", "production", "minilm-onnx")
    registry.close()
    return path


def start_sidecar(registry_path: Path, cache_dir: Path) -> Sidecar:
    """Start a sidecar on a free loopback port in this process and wait until it reports SERVING."""
    settings = SidecarSettings.model_validate(
        {
            "address": "127.0.0.1:0",
            "http_address": None,  # these tests use gRPC only; 8080 may be taken
            "models": {
                "embedding": {
                    "default_model_id": "minilm-onnx",
                    "registry_path": str(registry_path),
                    "cache_dir": str(cache_dir),
                    "ab_testing": {"tick_interval_s": 0.5},
                }
            },
            "load_entry_point_plugins": False,
        }
    )
    services = build_services(settings)
    server, port = build_server(settings, services)
    if not services.ready.wait(timeout=120):
        server.stop(None)
        raise RuntimeError("the sidecar did not become ready")
    return Sidecar(f"127.0.0.1:{port}", server, services)


# -- data ----------------------------------------------------------------------------------------


def corpus_nodes(dataset: BeirDataset) -> list[TextNode]:
    """All SciFact documents as nodes; ids are UUIDs derived from the doc ids, as Qdrant requires."""
    return [
        TextNode(
            id_=str(uuid.uuid5(uuid.NAMESPACE_URL, f"scifact/{doc.doc_id}")),
            text=doc.as_text(),
            metadata={"doc_id": doc.doc_id},
            excluded_embed_metadata_keys=["doc_id"],
            excluded_llm_metadata_keys=["doc_id"],
        )
        for doc in dataset.corpus.values()
    ]


def embedding(address: str, model: str) -> RagFactoryEmbedding:
    return RagFactoryEmbedding(address=address, model=model, timeout_s=120, load_plugins=False)


# -- timing --------------------------------------------------------------------------------------


@dataclass
class Throughput:
    label: str
    seconds: list[float]
    docs: int

    @property
    def best_docs_per_s(self) -> float:
        return self.docs / min(self.seconds)

    @property
    def worst_docs_per_s(self) -> float:
        return self.docs / max(self.seconds)


@dataclass
class Latency:
    label: str
    ms: list[float]

    def pct(self, q: float) -> float:
        return float(np.percentile(self.ms, q))


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def ms(fn: Callable[[], object]) -> float:
    return timed(fn) * 1e3


@contextmanager
def qdrant_store(directory: Path) -> Iterator[Any]:
    """A Qdrant local-mode store in ``directory``, closed afterwards."""
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(directory))
    try:
        yield QdrantVectorStore(client=client, collection_name="shadow"), client
    finally:
        client.close()


# -- the benchmark -------------------------------------------------------------------------------


def shadow_indexing(
    address: str, nodes: list[TextNode], texts: list[str], model_dir: Path, work: Path
) -> tuple[list[Throughput], PinnedIndex]:
    """Time each way of embedding the corpus ``REPEATS`` times, rounds interleaved; return the last shadow index."""
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(model_dir), device="cpu")
    client = RagFactoryClient(address, timeout_s=120)
    st.encode(texts[:64], batch_size=64)  # warm-up: kernels, tokenizer
    client.embed_batched(texts[:64], model="minilm@2.0.0", batch_size=256)  # loads 2.0.0 in the sidecar

    results = {
        key: Throughput(label, [], len(texts))
        for key, label in (
            ("st", "sentence-transformers in-process, `encode(batch_size=64)` (torch fp32)"),
            ("sidecar", "sidecar `embed_batched(batch_size=256)`, no index (ONNX fp32)"),
            ("memory", "`build_pinned_index`, in-memory store"),
            ("qdrant", "`build_pinned_index`, Qdrant local mode + checkpoint"),
        )
    }
    shadow: PinnedIndex | None = None
    for round_ in range(REPEATS):
        results["st"].seconds.append(timed(lambda: st.encode(texts, batch_size=64)))
        results["sidecar"].seconds.append(
            timed(lambda: client.embed_batched(texts, model="minilm@2.0.0", batch_size=256))
        )

        embed_model = embedding(address, "minilm@2.0.0")
        embed_model.pinned_model()  # resolve the pin outside the timed build, as a shadow build would have
        started = time.perf_counter()
        shadow = build_pinned_index(nodes, embed_model)
        results["memory"].seconds.append(time.perf_counter() - started)

        directory = work / f"qdrant-{round_}"
        checkpoint = work / f"checkpoint-{round_}.jsonl"
        qdrant_embed = embedding(address, "minilm@2.0.0")
        qdrant_embed.pinned_model()
        with qdrant_store(directory) as (store, qclient):
            started = time.perf_counter()
            build_pinned_index(nodes, qdrant_embed, vector_store=store, checkpoint=checkpoint)
            results["qdrant"].seconds.append(time.perf_counter() - started)
            written = qclient.count("shadow").count
        assert written == len(nodes), f"Qdrant holds {written} points, expected {len(nodes)}"
        print(f"round {round_ + 1}: " + ", ".join(f"{k} {v.seconds[-1]:.1f} s" for k, v in results.items()))
    client.close()
    assert shadow is not None
    return list(results.values()), shadow


def query_latency(
    address: str, nodes: list[TextNode], shadow: PinnedIndex, model_dir: Path
) -> tuple[list[Latency], Counter[str], str, float]:
    """p50/p95 of the plain retriever, the A/B retriever without and with an experiment, and ST encode."""
    from sentence_transformers import SentenceTransformer

    queries = [json.loads(line) for line in TEST_QUERIES.read_text(encoding="utf-8").splitlines()][:QUERIES]
    started = time.perf_counter()
    serving = build_pinned_index(nodes, embedding(address, "minilm@production"))
    serving_build_s = time.perf_counter() - started
    plain = serving.index.as_retriever(similarity_top_k=TOP_K)  # its embed_model: the pinned embedding
    ab = ABRetriever(serving, model="minilm@production", similarity_top_k=TOP_K)
    st = SentenceTransformer(str(model_dir), device="cpu")

    def plain_call(text: str) -> Callable[[], object]:
        return lambda: plain.retrieve(text)

    def st_call(text: str) -> Callable[[], object]:
        return lambda: st.encode(text)

    def ab_call(text: str, key: str) -> Callable[[], object]:
        return lambda: ab.retrieve_routed(text, routing_key=key)

    rows = {
        key: Latency(label, [])
        for key, label in (
            ("plain-1", "plain LlamaIndex retriever (baseline), phase 1"),
            ("ab-none", "`ABRetriever.retrieve_routed`, no experiment"),
            ("plain-2", "plain LlamaIndex retriever (baseline), phase 2"),
            ("ab-half", "`ABRetriever.retrieve_routed`, experiment at 50 %"),
            ("st", "context: sentence-transformers in-process `encode(query)`"),
        )
    }

    served: Counter[str] = Counter()

    def phase(plain_key: str, ab_key: str, with_st: bool) -> None:
        for query in queries[:WARMUP_QUERIES]:
            plain_call(query["text"])()
            ab_call(query["text"], f"warm-{query['_id']}")()
            st.encode(query["text"])
        for position, query in enumerate(queries):
            calls = [
                (plain_key, plain_call(query["text"])),
                (ab_key, ab_call(query["text"], f"user-{query['_id']}")),
            ]
            if position % 2:  # alternate the order so neither path always runs right after the other
                calls.reverse()
            for key, call in calls:
                rows[key].ms.append(ms(call))
            route = ab.last_route  # the plain retriever sets no route, so this is the A/B call's
            if ab_key == "ab-half" and route is not None:
                served[f"{route.arm}:{route.model_id}{' (fallback)' if route.fallback else ''}"] += 1
            if with_st:
                rows["st"].ms.append(ms(st_call(query["text"])))

    phase("plain-1", "ab-none", with_st=True)
    assert ab.last_route is not None and ab.last_route.arm == "" and not ab.last_route.fallback

    ab.start_experiment("bench-cls-at-half", shadow, **HOLD_AT_HALF)
    phase("plain-2", "ab-half", with_st=False)
    experiment = ab.sync()
    status = f"{experiment.status}, split {experiment.traffic_split:.2f}" if experiment else "none"
    return list(rows.values()), served, status, serving_build_s


def main() -> None:
    import subprocess

    model_name = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    cpu = next((line.split(":", 1)[1].strip() for line in model_name.splitlines() if "Model name" in line), "?")
    seen = wait_until_quiet()
    print(f"1-minute loads seen before starting: {', '.join(f'{x:.2f}' for x in seen)}")
    load_start = load_line("start")
    print(f"CPU: {cpu}")

    from rag_factory.models.embedding.hub import resolve_model_path

    model_dir = resolve_model_path(MINILM)
    dataset = load_beir(bundled_dataset("scifact_mini"))
    nodes = corpus_nodes(dataset)
    texts = [node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]  # what the index embeds
    work = Path(tempfile.mkdtemp(prefix="rf-bench-ab-retrieval-"))
    sidecar: Sidecar | None = None
    try:
        sidecar = start_sidecar(make_registry(work), work / "cache")
        throughput, shadow = shadow_indexing(sidecar.address, nodes, texts, model_dir, work)
        latencies, served, status, serving_build_s = query_latency(sidecar.address, nodes, shadow, model_dir)
    finally:
        if sidecar is not None:
            sidecar.stop()
        shutil.rmtree(work, ignore_errors=True)
    load_end = load_line("end")

    print(f"\n1. Shadow indexing of all {len(texts):,} SciFact-mini documents (best of {REPEATS} passes; worst shown)")
    print("   The sidecar serves fp32 ONNX (onnxruntime); sentence-transformers runs the same weights on torch fp32.")
    print("   minilm@2.0.0 is the CLS-pooled candidate; the sidecar runs in this process, on the same cores.\n")
    st_rate = throughput[0].best_docs_per_s
    sidecar_rate = throughput[1].best_docs_per_s
    print("| way of embedding the corpus | docs/s (best) | worst | vs sentence-transformers | vs sidecar embed |")
    print("|---|---:|---:|---:|---:|")
    for row in throughput:
        rate = row.best_docs_per_s
        print(
            f"| {row.label} | {rate:.1f} | {row.worst_docs_per_s:.1f} | {rate / st_rate:.2f}× "
            f"| {(rate / sidecar_rate - 1) * 100:+.1f}% |"
        )
    memory_s, qdrant_s, embed_s = (min(throughput[i].seconds) for i in (2, 3, 1))
    print(
        f"\n   index writes: in-memory build {memory_s - embed_s:+.2f} s over plain embedding, "
        f"Qdrant + checkpoint {qdrant_s - embed_s:+.2f} s ({(qdrant_s - memory_s) / len(texts) * 1e3:+.2f} ms/doc "
        f"over in-memory)"
    )
    print(f"   serving index (minilm@production, mean pooling), one build: {len(texts) / serving_build_s:.1f} docs/s")

    print(f"\n2. Latency per query, {QUERIES} SciFact test queries, top-{TOP_K}, {WARMUP_QUERIES} warm-ups first")
    print("   Baseline and A/B calls alternate query by query; phase 2 runs with the experiment at 50 %.\n")
    print("| path | p50 ms | p95 ms | mean ms | p50 added vs baseline of its phase |")
    print("|---|---:|---:|---:|---:|")
    base = {"ab-none": latencies[0], "ab-half": latencies[2]}
    for key, lat in zip(("plain-1", "ab-none", "plain-2", "ab-half", "st"), latencies, strict=True):
        added = ""
        if key in base:
            added = f"{lat.pct(50) - base[key].pct(50):+.2f} ms"
        print(f"| {lat.label} | {lat.pct(50):.2f} | {lat.pct(95):.2f} | {statistics.fmean(lat.ms):.2f} | {added} |")
    print(f"\n   served with the experiment on: {dict(served)}; experiment after the run: {status}")
    print(
        f"\nload average start {load_start[0]:.2f}/{load_start[1]:.2f}/{load_start[2]:.2f}, "
        f"end {load_end[0]:.2f}/{load_end[1]:.2f}/{load_end[2]:.2f}; {os.cpu_count()} CPUs ({cpu})"
    )


if __name__ == "__main__":
    main()

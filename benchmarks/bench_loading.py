"""Benchmark model loading and encode throughput of every backend against raw sentence-transformers.

Run:  .venv/bin/python benchmarks/bench_loading.py [--docs 512] [--data ../shared/data/scifact]

Everything is measured in this one run on this machine: the baseline (``SentenceTransformer.encode``,
torch fp32) and each of our backends encode the same SciFact documents and queries.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

from rag_factory.data import bundled_dataset  # noqa: E402
from rag_factory.data.beir import load_beir  # noqa: E402

MINILM = "sentence-transformers/all-MiniLM-L6-v2"

_COLD_LOAD = """
import json, os, sys, time
os.environ["HF_HUB_OFFLINE"] = "1"
started = time.perf_counter()
from rag_factory.models.embedding import CustomModelLoader, ModelConfig
loader = CustomModelLoader(cache_dir=sys.argv[2])
config = ModelConfig(**json.loads(sys.argv[1]))
loader.load_model(config)
first = time.perf_counter() - started
loader.clear_cache()
started = time.perf_counter()
loader.load_model(config)
warm = time.perf_counter() - started
samples = []
for _ in range(2000):
    started = time.perf_counter_ns()
    loader.load_model(config)
    samples.append(time.perf_counter_ns() - started)
samples.sort()
print(json.dumps({"first_load_s": first, "load_s": warm, "cached_load_us": samples[len(samples) // 2] / 1e3}))
"""


def cold_loads(configs: dict[str, dict[str, object]], cache_dir: str) -> dict[str, dict[str, float]]:
    """Load each config in a fresh process: first load (with library imports), reload, cached load."""
    results = {}
    for name, config in configs.items():
        out = subprocess.run(
            [sys.executable, "-c", _COLD_LOAD, json.dumps(config), cache_dir],
            capture_output=True,
            text=True,
            check=True,
        )
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    return results


def throughput(encode: object, texts: list[str], repeats: int = 2) -> tuple[float, np.ndarray]:
    """Best-of-``repeats`` texts/second, and the vectors."""
    assert callable(encode)
    encode(texts[:32])  # warm-up: lazy allocations, kernel selection
    best, vectors = float("inf"), np.zeros(0)
    for _ in range(repeats):
        started = time.perf_counter()
        vectors = np.asarray(encode(texts))
        best = min(best, time.perf_counter() - started)
    return len(texts) / best, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/scifact", help="BEIR dataset (falls back to bundled)")
    parser.add_argument("--docs", type=int, default=512, help="documents to encode")
    parser.add_argument("--json", default="benchmarks/results/loading.json")
    args = parser.parse_args()

    data = Path(args.data) if Path(args.data).is_dir() else bundled_dataset("scifact_mini")
    dataset = load_beir(data)
    docs = [d.as_text() for d in random.Random(0).sample(list(dataset.corpus.values()), args.docs)]
    queries = [dataset.queries[q] for q in dataset.split("test")]

    from sentence_transformers import SentenceTransformer

    from rag_factory.models.embedding import CustomModelLoader
    from rag_factory.models.embedding.hub import resolve_model_path
    from rag_factory.models.embedding.onnx_export import export_onnx

    workdir = Path(tempfile.mkdtemp(prefix="rf-bench-"))
    onnx_dir = export_onnx(resolve_model_path(MINILM), workdir / "onnx")
    # The previous int8 scheme, for comparison: ONNX Runtime's dynamic quantiser (per channel), under
    # the file name optimum uses, which our loader runs on ONNX Runtime.
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dynamic_dir = workdir / "onnx-dynamic"
    shutil.copytree(onnx_dir, dynamic_dir, ignore=shutil.ignore_patterns("model_int8.onnx"))
    quantize_dynamic(
        dynamic_dir / "model.onnx", dynamic_dir / "model_qint8_avx512_vnni.onnx", per_channel=True,
        weight_type=QuantType.QInt8,
    )  # fmt: skip
    int8 = {"model_format": "onnx", "quantization": "int8"}
    configs: dict[str, dict[str, object]] = {
        "sentence_transformers": {"model_path": MINILM, "model_format": "sentence_transformers"},
        "huggingface": {"model_path": MINILM, "model_format": "huggingface"},
        "onnx_fp32": {"model_path": str(onnx_dir), "model_format": "onnx"},
        "onnx_int8 (static, OpenVINO)": {"model_path": str(onnx_dir), **int8},
        "onnx_int8 (static, ONNX Runtime)": {
            "model_path": str(onnx_dir),
            **int8,
            "additional_config": {"onnx_runtime": "onnxruntime"},
        },
        "onnx_int8 (dynamic, ONNX Runtime)": {"model_path": str(dynamic_dir), **int8},
    }
    loads = cold_loads(configs, str(workdir / "cache"))

    baseline = SentenceTransformer(str(resolve_model_path(MINILM)), device="cpu")
    rows = []
    base_docs_tps, base_docs = throughput(lambda t: baseline.encode(t, batch_size=32, normalize_embeddings=True), docs)
    base_q_tps, base_q = throughput(lambda t: baseline.encode(t, batch_size=32, normalize_embeddings=True), queries)
    rows.append(("raw SentenceTransformer.encode (baseline)", base_docs_tps, base_q_tps, 1.0, 1.0, 1.0, 1.0))
    loader = CustomModelLoader(cache_dir=workdir / "cache")
    for name, config in configs.items():
        model = loader.load_model(config)
        docs_tps, doc_vectors = throughput(model.encode, docs)
        q_tps, q_vectors = throughput(model.encode, queries)
        doc_cos = (doc_vectors * base_docs).sum(axis=1)
        q_cos = (q_vectors * base_q).sum(axis=1)
        rows.append(
            (
                name,
                docs_tps,
                q_tps,
                float(doc_cos.mean()),
                float(doc_cos.min()),
                float(q_cos.mean()),
                float(q_cos.min()),
            )
        )

    lengths = [len(baseline.tokenizer(d, truncation=True, max_length=256)["input_ids"]) for d in docs]
    print(
        f"\nmachine: {os.cpu_count()} CPUs; {len(docs)} SciFact documents (mean {statistics.mean(lengths):.0f} "
        f"tokens after truncation at 256), {len(queries)} test queries; batch 32\n"
    )
    print("| backend | load, fresh process (incl. imports) | load, libraries warm | cached load |")
    print("|---|---|---|---|")
    for name, figures in loads.items():
        print(
            f"| {name} | {figures['first_load_s']:.2f} s | {figures['load_s']:.2f} s | "
            f"{figures['cached_load_us']:.1f} µs |"
        )
    print(
        "\n| encoder | docs/s | speed-up | queries/s | speed-up | cosine docs mean / min | cosine queries mean / min |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, dtps, qtps, dmean, dmin, qmean, qmin in rows:
        print(
            f"| {name} | {dtps:.1f} | {dtps / base_docs_tps:.2f}× | {qtps:.0f} | {qtps / base_q_tps:.2f}× | "
            f"{dmean:.4f} / {dmin:.4f} | {qmean:.4f} / {qmin:.4f} |"
        )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"loads": loads, "throughput": rows}, indent=2))


if __name__ == "__main__":
    main()

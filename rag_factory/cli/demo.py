"""``rag-factory demo``: the end-to-end tour on the bundled model, dataset and an SQLite registry."""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from rag_factory.data import bundled_dataset
from rag_factory.data.beir import load_beir
from rag_factory.models.embedding import CustomModelLoader, EmbeddingModelMetadata
from rag_factory.models.embedding.hub import DEFAULT_BASE_MODEL, resolve_model_path
from rag_factory.models.embedding.registry import ModelRegistry


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Attach the ``demo`` command."""
    parser = subparsers.add_parser("demo", help="run the end-to-end demo on the bundled defaults")
    parser.add_argument("--workdir", default="demo_output", help="where the demo writes (replaced each run)")
    parser.set_defaults(func=run_demo)


def _section(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def _register_models(registry: ModelRegistry, workdir: Path) -> list[str]:
    base_dir = resolve_model_path(DEFAULT_BASE_MODEL)
    common = {"embedding_dim": 384, "max_seq_length": 256, "domain": "general", "created_by": "demo"}
    base = registry.register_model(
        EmbeddingModelMetadata(
            model_id="minilm-st-1.0.0",
            model_name="minilm",
            version="1.0.0",
            format="sentence_transformers",
            base_model=DEFAULT_BASE_MODEL,
            description="all-MiniLM-L6-v2, sentence-transformers layout",
            tags=["base", "english"],
            **common,
        ),
        artifact_path=base_dir,
    )
    hf = registry.register_model(
        EmbeddingModelMetadata(
            model_id="minilm-hf-1.0.0",
            model_name="minilm-hf",
            version="1.0.0",
            format="huggingface",
            base_model=base.model_id,
            description="the same weights through transformers.AutoModel",
            tags=["english"],
            **common,
        ),
        artifact_path=base_dir,
        load_config={"pooling_strategy": "mean"},
    )
    from rag_factory.models.embedding.onnx_export import export_onnx

    started = time.perf_counter()
    onnx_dir = export_onnx(base_dir, workdir / "exports" / "minilm-onnx")
    print(f"exported ONNX fp32 + int8 in {time.perf_counter() - started:.1f} s -> {onnx_dir}")
    onnx = registry.register_model(
        EmbeddingModelMetadata(
            model_id="minilm-onnx-int8-1.0.0",
            model_name="minilm-onnx",
            version="1.0.0",
            format="onnx",
            base_model=base.model_id,
            description="ONNX Runtime, dynamic int8 quantisation",
            tags=["english", "int8"],
            **common,
        ),
        artifact_path=onnx_dir,
        load_config={"quantization": "int8"},
    )
    registry.set_alias("minilm", "production", base.model_id)
    for record in (base, hf, onnx):
        size = sum(
            p.stat().st_size for p in Path(str(registry.artifact_path(record.model_id))).rglob("*") if p.is_file()
        )
        registry.update_metrics(record.model_id, {"model_size_mb": size / 1e6})
        print(f"registered {record.ref:<22} id={record.model_id:<24} format={record.metadata.format.value}")
    print(f"lineage: descendants of {base.model_id}: {', '.join(registry.descendants(base.model_id))}")
    return [base.model_id, hf.model_id, onnx.model_id]


def run_demo(args: argparse.Namespace) -> int:
    """Run every stage of the demo and print what each shows."""
    workdir = Path(args.workdir).resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    loader = CustomModelLoader(cache_dir=workdir / "cache")
    registry = ModelRegistry(workdir / "registry")

    _section("1. Registry: three models with lineage (SQLite + content-addressed artifacts)")
    model_ids = _register_models(registry, workdir)

    _section("2. Embedding SciFact queries with each model")
    dataset = load_beir(bundled_dataset("scifact_mini"))
    queries = list(dataset.queries.values())
    docs = [d.as_text() for d in dataset.corpus.values()][:256]
    print(
        f"dataset: {dataset.name} ({len(queries)} queries, {len(dataset.corpus)} documents; "
        f"timing uses {len(docs)} documents)"
    )
    vectors: dict[str, np.ndarray] = {}
    for model_id in model_ids:
        started = time.perf_counter()
        record, model = registry.load_model(model_id, loader)
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        _, again = registry.load_model(model_id, loader)
        cached_ms = (time.perf_counter() - started) * 1e3
        vectors[model_id] = model.encode(queries)
        started = time.perf_counter()
        model.encode(docs)
        docs_per_s = len(docs) / (time.perf_counter() - started)
        registry.update_metrics(model_id, {"docs_per_second_cpu": docs_per_s})
        print(
            f"{record.ref:<22} backend={model.info.backend:<21} {model.info.precision:<4} "
            f"load {load_s:5.2f} s  cached load {cached_ms:6.3f} ms  {docs_per_s:6.1f} docs/s"
            f"{'' if again is model else '  (cache miss!)'}"
        )

    _section("3. Agreement with the base model (cosine over the same queries)")
    base = vectors[model_ids[0]]
    for model_id in model_ids[1:]:
        similarity = (vectors[model_id] * base).sum(axis=1)
        print(f"{model_id:<24} vs {model_ids[0]}: mean {similarity.mean():.5f}  min {similarity.min():.5f}")

    _section("Done")
    print(f"registry: {registry.path / 'registry.db'} ({len(registry.list_models())} models)")
    print(f"try: rag-factory registry --registry {registry.path} list")
    return 0

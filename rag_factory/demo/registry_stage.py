"""Demo stage 1: register the base model in three formats, with lineage, and compare their vectors."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from rag_factory.demo.context import DemoContext, section
from rag_factory.models.embedding import EmbeddingModelMetadata
from rag_factory.models.embedding.hub import DEFAULT_BASE_MODEL, resolve_model_path
from rag_factory.models.embedding.onnx_export import export_onnx


def register_models(ctx: DemoContext) -> None:
    """Register MiniLM as sentence-transformers, as Hugging Face with mean pooling, and as ONNX int8."""
    section("1. Registry: three models with lineage (SQLite + content-addressed artifacts)")
    registry = ctx.registry
    base_dir = resolve_model_path(DEFAULT_BASE_MODEL)
    common = {"embedding_dim": 384, "max_seq_length": 256, "domain": "general", "created_by": "demo"}
    base = registry.register_model(
        EmbeddingModelMetadata(
            model_id="minilm-st-1.0.0", model_name="minilm", version="1.0.0", format="sentence_transformers",
            base_model=DEFAULT_BASE_MODEL, description="all-MiniLM-L6-v2, sentence-transformers layout",
            tags=["base", "english"], **common,
        ),
        artifact_path=base_dir,
    )  # fmt: skip
    hf = registry.register_model(
        EmbeddingModelMetadata(
            model_id="minilm-hf-1.0.0", model_name="minilm-hf", version="1.0.0", format="huggingface",
            base_model=base.model_id, description="the same weights through transformers.AutoModel",
            tags=["english"], **common,
        ),
        artifact_path=base_dir,
        load_config={"pooling_strategy": "mean"},
    )  # fmt: skip
    started = time.perf_counter()
    onnx_dir = export_onnx(base_dir, ctx.workdir / "exports" / "minilm-onnx")
    print(f"exported ONNX fp32 + int8 in {time.perf_counter() - started:.1f} s -> {onnx_dir}")
    onnx = registry.register_model(
        EmbeddingModelMetadata(
            model_id="minilm-onnx-int8-1.0.0", model_name="minilm-onnx", version="1.0.0", format="onnx",
            base_model=base.model_id, description="static int8 ONNX (NNCF), run by OpenVINO",
            tags=["english", "int8"], **common,
        ),
        artifact_path=onnx_dir,
        load_config={"quantization": "int8"},
    )  # fmt: skip
    registry.set_alias("minilm", "production", base.model_id)
    for record in (base, hf, onnx):
        artifact = Path(str(registry.artifact_path(record.model_id)))
        size = sum(p.stat().st_size for p in artifact.rglob("*") if p.is_file())
        registry.update_metrics(record.model_id, {"model_size_mb": size / 1e6})
        print(f"registered {record.ref:<22} id={record.model_id:<24} format={record.metadata.format.value}")
    print(f"lineage: descendants of {base.model_id}: {', '.join(registry.descendants(base.model_id))}")
    ctx.models.update(base=base.model_id, hf=hf.model_id, onnx=onnx.model_id)


def compare_backends(ctx: DemoContext) -> None:
    """Embed the SciFact queries with each model; print timings and agreement with the base."""
    section("2. Embedding SciFact queries with each model")
    dataset = ctx.dataset
    queries = list(dataset.queries.values())
    docs = [d.as_text() for d in dataset.corpus.values()][:256]
    print(
        f"dataset: {dataset.name} ({len(queries)} queries, {len(dataset.corpus)} documents; "
        f"timing uses {len(docs)} documents)"
    )
    vectors: dict[str, np.ndarray] = {}
    model_ids = [ctx.models["base"], ctx.models["hf"], ctx.models["onnx"]]
    for model_id in model_ids:
        started = time.perf_counter()
        record, model = ctx.registry.load_model(model_id, ctx.loader)
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        _, again = ctx.registry.load_model(model_id, ctx.loader)
        cached_ms = (time.perf_counter() - started) * 1e3
        vectors[model_id] = model.encode(queries)
        started = time.perf_counter()
        model.encode(docs)
        docs_per_s = len(docs) / (time.perf_counter() - started)
        ctx.registry.update_metrics(model_id, {"docs_per_second_cpu": docs_per_s})
        print(
            f"{record.ref:<22} backend={model.info.backend:<21} {model.info.precision:<4} "
            f"load {load_s:5.2f} s  cached load {cached_ms:6.3f} ms  {docs_per_s:6.1f} docs/s"
            f"{'' if again is model else '  (cache miss!)'}"
        )

    section("3. Agreement with the base model (cosine over the same queries)")
    base = vectors[model_ids[0]]
    for model_id in model_ids[1:]:
        similarity = (vectors[model_id] * base).sum(axis=1)
        print(f"{model_id:<24} vs {model_ids[0]}: mean {similarity.mean():.5f}  min {similarity.min():.5f}")

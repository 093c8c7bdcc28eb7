"""Fixtures for evaluation tests: a tiny BEIR dataset cut from the bundled subset, and a real registry."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag_factory.data.beir import BeirDataset, write_beir
from rag_factory.models.embedding import CustomModelLoader, EmbeddingModelMetadata, ModelRegistry
from rag_factory.models.evaluation.comparison import ComparisonResult, compare_models_detailed

TINY_QUERIES = 20
TINY_EXTRA_DOCS = 60


@pytest.fixture(scope="session")
def tiny_dataset(scifact_mini: BeirDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 test queries of the bundled SciFact subset, their relevant documents and 60 others (~85 docs)."""
    test = dict(list(scifact_mini.qrels["test"].items())[:TINY_QUERIES])
    relevant = sorted({d for judged in test.values() for d in judged})
    others = [d for d in scifact_mini.corpus if d not in relevant][:TINY_EXTRA_DOCS]
    folder = tmp_path_factory.mktemp("data") / "scifact_tiny"
    corpus = {d: scifact_mini.corpus[d] for d in relevant + others}
    queries = {q: scifact_mini.queries[q] for q in sorted(test)}
    return write_beir(folder, corpus, queries, {"test": test, "empty": {}})


@pytest.fixture
def dangling_dataset(tiny_dataset: Path, tmp_path: Path) -> Path:
    """The tiny dataset plus two judgements naming a document and a query that do not exist."""
    folder = tmp_path / "scifact_dangling"
    shutil.copytree(tiny_dataset, folder)
    with (folder / "qrels" / "test.tsv").open("a", encoding="utf-8") as handle:
        first_query = next(iter(json.loads(line)["_id"] for line in (folder / "queries.jsonl").open()))
        handle.write(f"{first_query}\tno-such-doc\t1\nno-such-query\tno-such-doc\t1\n")
    return folder


def _metadata(model_id: str, version: str, fmt: str, **extra: object) -> EmbeddingModelMetadata:
    return EmbeddingModelMetadata(
        model_id=model_id,
        model_name="minilm",
        version=version,
        format=fmt,
        embedding_dim=384,
        max_seq_length=256,
        **extra,
    )


@pytest.fixture(scope="session")
def eval_registry(
    minilm_dir: Path, onnx_export_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModelRegistry]:
    """minilm@1.0.0 (sentence-transformers) and minilm@1.1.0 (its ONNX export), production -> 1.1.0."""
    registry = ModelRegistry(tmp_path_factory.mktemp("registry"))
    registry.register_model(_metadata("minilm-1.0.0", "1.0.0", "sentence_transformers"), artifact_path=minilm_dir)
    registry.register_model(
        _metadata("minilm-1.1.0", "1.1.0", "onnx", base_model="minilm-1.0.0", fine_tuned_on="scifact_tiny"),
        artifact_path=onnx_export_dir,
    )
    registry.set_alias("minilm", "production", "minilm-1.1.0")
    yield registry
    registry.close()


@pytest.fixture(scope="session")
def comparison(
    eval_registry: ModelRegistry,
    tiny_dataset: Path,
    shared_loader: CustomModelLoader,
    tmp_path_factory: pytest.TempPathFactory,
) -> ComparisonResult:
    """minilm 1.0.0 (sentence-transformers, fp32) against minilm@production (ONNX int8) on the tiny dataset."""
    return compare_models_detailed(
        "minilm@1.0.0",
        "minilm@production",
        tiny_dataset,
        registry=eval_registry,
        loader=shared_loader,
        cache_dir=tmp_path_factory.mktemp("embeddings"),
        n_examples=3,
    )

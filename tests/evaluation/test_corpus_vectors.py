"""Corpus vectors computed outside evaluation (by a fine-tuning run) and stored where evaluation reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from rag_factory.data.beir import BeirDataset, load_beir
from rag_factory.models.embedding import CustomModelLoader, EmbeddingModelMetadata, ModelRegistry
from rag_factory.models.evaluation.corpus_vectors import store_corpus_vectors
from rag_factory.models.evaluation.evaluator import evaluate_detailed
from rag_factory.models.training.sentence_models import encoder_of, load_sentence_transformer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset(tiny_dataset: Path) -> BeirDataset:
    return load_beir(tiny_dataset)


@pytest.fixture(scope="module")
def training_side_vectors(minilm_dir: Path, dataset: BeirDataset) -> npt.NDArray[np.float32]:
    """The corpus as ``fine_tune`` embeds it: the model's own encode, 256 tokens, fp32, normalised."""
    encode = encoder_of(load_sentence_transformer(minilm_dir, "cpu"), 256)
    return encode([doc.as_text() for doc in dataset.corpus.values()])


def test_evaluation_reads_stored_vectors_instead_of_embedding(
    eval_registry: ModelRegistry,
    dataset: BeirDataset,
    training_side_vectors: npt.NDArray[np.float32],
    shared_loader: CustomModelLoader,
    tmp_path: Path,
) -> None:
    stored = store_corpus_vectors(
        "minilm-1.0.0", dataset, training_side_vectors, registry=eval_registry, cache_dir=tmp_path,
        max_seq_length=256, loader=shared_loader,
    )  # fmt: skip
    assert stored is not None and (stored / "corpus.npy").is_file()

    def run(refresh: bool) -> tuple[str, dict[str, float], npt.NDArray[np.float32]]:
        result = evaluate_detailed("minilm-1.0.0", dataset.path, registry=eval_registry, loader=shared_loader,
                                   backend="native", cache_dir=tmp_path, refresh_cache=refresh)  # fmt: skip
        return result.report.corpus_cache, result.report.metrics, result.doc_vectors

    status, metrics, vectors = run(refresh=False)
    assert status == "hit"
    np.testing.assert_array_equal(vectors, training_side_vectors)
    # Embedding afresh on the evaluation side gives the same vectors up to float rounding, and the
    # same metrics: stored vectors stand in for evaluation's own.
    status, fresh_metrics, fresh_vectors = run(refresh=True)
    assert status == "refreshed"
    assert float(np.abs(fresh_vectors - training_side_vectors).max()) < 1e-5
    assert fresh_metrics == pytest.approx(metrics, abs=1e-6)


@pytest.mark.parametrize(
    ("model_ref", "max_seq_length"),
    [("minilm-1.1.0", 256), ("minilm-1.0.0", 128)],
    ids=["model-served-from-onnx", "other-token-limit"],
)
def test_vectors_evaluation_would_not_reproduce_are_not_stored(
    eval_registry: ModelRegistry,
    dataset: BeirDataset,
    training_side_vectors: npt.NDArray[np.float32],
    shared_loader: CustomModelLoader,
    tmp_path: Path,
    model_ref: str,
    max_seq_length: int,
) -> None:
    # An ONNX model is embedded by ONNX Runtime, and a 128-token run truncates differently from the
    # model's 256: either way evaluation would get other vectors, so these must never be found there.
    stored = store_corpus_vectors(
        model_ref, dataset, training_side_vectors, registry=eval_registry, cache_dir=tmp_path,
        max_seq_length=max_seq_length, loader=shared_loader,
    )  # fmt: skip
    assert stored is None
    assert not any(tmp_path.iterdir())


def test_vectors_are_not_stored_for_a_model_whose_pooling_evaluation_sets_itself(
    minilm_dir: Path, dataset: BeirDataset, training_side_vectors: npt.NDArray[np.float32], tmp_path: Path
) -> None:
    # The same weights registered as a Hugging Face model with CLS pooling: evaluation would pool
    # differently from the sentence-transformers pipeline the vectors came from.
    registry = ModelRegistry(tmp_path / "registry")
    registry.register_model(
        EmbeddingModelMetadata(model_id="minilm-cls-1.0.0", model_name="minilm-cls", version="1.0.0",
                               format="huggingface", embedding_dim=384, max_seq_length=256),
        artifact_path=minilm_dir, load_config={"pooling_strategy": "cls"},
    )  # fmt: skip
    cache = tmp_path / "embeddings"
    stored = store_corpus_vectors("minilm-cls-1.0.0", dataset, training_side_vectors, registry=registry,
                                  cache_dir=cache, max_seq_length=256)  # fmt: skip
    registry.close()
    assert stored is None and not cache.exists()


def test_vectors_of_another_corpus_are_refused(
    eval_registry: ModelRegistry, dataset: BeirDataset, training_side_vectors: npt.NDArray[np.float32], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="one vector per document"):
        store_corpus_vectors("minilm-1.0.0", dataset, training_side_vectors[:-1], registry=eval_registry,
                             cache_dir=tmp_path, max_seq_length=256)  # fmt: skip
    assert not any(tmp_path.iterdir())

"""Our evaluator against sentence-transformers' ``InformationRetrievalEvaluator`` on the same model and data.

The full-SciFact check (nDCG@10 ≈ 0.645 for the base MiniLM, 5,183 documents embedded twice) takes minutes on
our CPU, so it lives in ``benchmarks/bench_evaluation.py``; this test runs the same comparison on the tiny cut.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_factory.data.beir import load_beir
from rag_factory.models.embedding import CustomModelLoader
from rag_factory.models.evaluation.evaluator import evaluate


@pytest.mark.slow
def test_metrics_agree_with_information_retrieval_evaluator(
    minilm_dir: Path, tiny_dataset: Path, shared_loader: CustomModelLoader
) -> None:
    """nDCG@10, MRR@10 and recall@10 of the fp32 base model agree to 1e-3 with sentence-transformers'."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    ours = evaluate(
        minilm_dir,
        tiny_dataset,
        backend="native",
        cache_dir=None,
        loader=shared_loader,
        metrics=["ndcg@10", "mrr@10", "recall@10"],
    )
    dataset = load_beir(tiny_dataset)
    qrels = dataset.split("test")
    reference = InformationRetrievalEvaluator(
        queries={q: dataset.queries[q] for q in qrels},
        corpus={d: doc.as_text() for d, doc in dataset.corpus.items()},
        relevant_docs={q: {d for d, g in judged.items() if g > 0} for q, judged in qrels.items()},
        ndcg_at_k=[10], mrr_at_k=[10], precision_recall_at_k=[10], accuracy_at_k=[1], map_at_k=[10], write_csv=False,
    )  # fmt: skip
    model = shared_loader.load_model({"model_path": str(minilm_dir), "model_format": "sentence_transformers"})
    scores = reference(model.model)  # type: ignore[attr-defined]
    assert ours.backend == "sentence_transformers"
    for ours_name, theirs in (
        ("ndcg@10", "cosine_ndcg@10"),
        ("mrr@10", "cosine_mrr@10"),
        ("recall@10", "cosine_recall@10"),
    ):
        assert ours.metrics[ours_name] == pytest.approx(scores[theirs], abs=1e-3)

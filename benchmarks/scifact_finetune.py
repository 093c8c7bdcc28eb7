"""The default fine-tuning recipe on SciFact, then cross-domain PubMedQA-L, with wall times.

Usage: ``python benchmarks/scifact_finetune.py [--scifact DIR] [--pubmedqa DIR] [--work DIR] [--device cpu]``

Only SciFact's train split is used for training and validation (a split carved from it picks the
best epoch); its test split is evaluated once at the end. Nothing here overrides the recipe.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    """Run the recipe and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scifact", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--pubmedqa", type=Path, default=ROOT.parent / "shared" / "data" / "pubmedqa-l")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rag_factory_scifact"))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()

    from rag_factory.data.beir import load_beir
    from rag_factory.jobs.publishing import fine_tune_and_publish
    from rag_factory.models.embedding.hub import DEFAULT_BASE_MODEL
    from rag_factory.models.embedding.registry import ModelRegistry
    from rag_factory.models.training.config import FineTuneConfig
    from rag_factory.models.training.events import TrainingEvent
    from rag_factory.models.training.registration import ensure_base_registered
    from rag_factory.models.training.sentence_models import encoder_of, load_sentence_transformer
    from rag_factory.retrieval.exact_search import evaluate_encoder

    started = time.perf_counter()
    registry_path = args.work / "registry"
    with ModelRegistry(registry_path) as registry:
        base_id = ensure_base_registered(registry, DEFAULT_BASE_MODEL).model_id
    config = FineTuneConfig(
        data=args.scifact, base_model=base_id, registry_path=registry_path, work_dir=args.work,
        output_dir=args.work / "model", device=args.device,
    )  # fmt: skip

    def report(event: TrainingEvent) -> None:
        if event.kind != "step":
            print(f"{time.perf_counter() - started:7.0f} s  [{event.kind}] epoch {event.epoch:.1f} {event.message}",
                  flush=True)  # fmt: skip

    result = fine_tune_and_publish(config, on_event=report)
    tuned_s = time.perf_counter() - started
    assert result.base_test is not None and result.test is not None and result.comparison is not None
    print(
        f"\nrecipe: strategy {result.strategy}, " + ", ".join(f"{k}={v:g}" for k, v in result.hyperparameters.items())
    )
    print(f"epochs trained {result.epochs_trained:.1f} (best restored), {result.train_rows} rows, "
          f"train {result.train_seconds:.0f} s, fine_tune total {result.total_seconds:.0f} s")  # fmt: skip

    cross_started = time.perf_counter()
    pubmed = load_beir(args.pubmedqa)
    length = int(result.hyperparameters["max_seq_length"])
    base = load_sentence_transformer(Path(str(ModelRegistry(registry_path).artifact_path(base_id))), args.device)
    tuned = load_sentence_transformer(result.output_dir, args.device)
    before = evaluate_encoder(encoder_of(base, length), pubmed, "test").metrics["ndcg@10"]
    after = evaluate_encoder(encoder_of(tuned, length), pubmed, "test").metrics["ndcg@10"]
    cross_s = time.perf_counter() - cross_started

    c = result.comparison
    print("\n| measure | base | fine-tuned |")
    print("|---|---:|---:|")
    print(f"| SciFact validation nDCG@10 (carved from train) | {result.base_validation['ndcg@10']:.4f} | "
          f"{result.validation['ndcg@10']:.4f} |")  # fmt: skip
    print(
        f"| SciFact test nDCG@10 ({c.n} queries) | {result.base_test['ndcg@10']:.4f} | {result.test['ndcg@10']:.4f} |"
    )
    print(f"| PubMedQA-L test nDCG@10 | {before:.4f} | {after:.4f} |")
    print(f"\npaired test (SciFact test nDCG@10): diff {c.mean_diff:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}], "
          f"t-test p={c.t_pvalue:.2e}, Wilcoxon p={c.wilcoxon_pvalue:.2e}, "
          f"wins/losses {c.wins}/{c.losses}")  # fmt: skip
    print(f"wall: fine-tuning run {tuned_s:.0f} s ({tuned_s / 60:.1f} min), PubMedQA-L check {cross_s:.0f} s, "
          f"registered {result.model_ref}")  # fmt: skip


if __name__ == "__main__":
    main()

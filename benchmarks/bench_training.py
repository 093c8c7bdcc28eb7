"""Training throughput of ``fine_tune`` against the plain sentence-transformers trainer (same loss, batch, data).

Usage: ``python benchmarks/bench_training.py [--epochs 1] [--batch-size 32] [--max-seq-length 128]``

Both sides train MNRL on (query, positive) pairs. ``fine_tune`` runs twice: with the model's own
dropout (like for like) and with the recipe's (dropout off, which also lets PyTorch use its fused
attention kernel). Each side runs in its own fresh process (so peak RSS is its own), one after the
other, on the bundled SciFact subset's training pairs. Rows/s counts training rows per
second of ``trainer.train()``; the end-to-end time of ``fine_tune`` adds loading, corpus encoding for
mining/validation bookkeeping and saving. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _ours(args: dict[str, Any], queue: mp.Queue[dict[str, float]]) -> None:
    from rag_factory.data import bundled_dataset
    from rag_factory.models.training.config import FineTuneConfig
    from rag_factory.models.training.trainer import fine_tune

    with tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        config = FineTuneConfig(
            data=bundled_dataset("scifact_mini"), work_dir=Path(work), test_split=None, validation_fraction=0.0,
            early_stopping_patience=0, export_onnx=False, epochs=args["epochs"], batch_size=args["batch_size"],
            train_max_seq_length=args["max_seq_length"], learning_rate=1e-4, strategy="mnrl",
            **({} if args["recipe_dropout"] else {"attention_dropout": None, "hidden_dropout": None}),
        )  # fmt: skip
        result = fine_tune(config)
        queue.put(
            {"rows": result.train_rows * result.epochs_trained, "train_s": result.train_seconds,
             "e2e_s": time.perf_counter() - started, "peak_mb": _peak_rss_mb()}
        )  # fmt: skip


def _plain(args: dict[str, Any], queue: mp.Queue[dict[str, float]]) -> None:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers import SentenceTransformerTrainingArguments as Arguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from rag_factory.data import bundled_dataset
    from rag_factory.data.beir import load_beir
    from rag_factory.models.embedding.hub import DEFAULT_BASE_MODEL, resolve_model_path

    started = time.perf_counter()
    dataset = load_beir(bundled_dataset("scifact_mini"))
    pairs = [(q, d) for q, judged in dataset.split("train").items() for d in judged]
    rows = {
        "anchor": [dataset.queries[q] for q, _ in pairs],
        "positive": [dataset.corpus[d].as_text() for _, d in pairs],
    }
    model = SentenceTransformer(str(resolve_model_path(DEFAULT_BASE_MODEL)), device="cpu")
    model.max_seq_length = args["max_seq_length"]
    with tempfile.TemporaryDirectory() as work:
        training_args = Arguments(
            output_dir=work, num_train_epochs=args["epochs"], per_device_train_batch_size=args["batch_size"],
            learning_rate=1e-4, warmup_steps=0.1, batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="no",
            report_to="none", seed=0, use_cpu=True, disable_tqdm=True,
        )  # fmt: skip
        trainer = SentenceTransformerTrainer(
            model=model, args=training_args, train_dataset=Dataset.from_dict(rows),
            loss=MultipleNegativesRankingLoss(model),
        )  # fmt: skip
        train_started = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - train_started
    queue.put(
        {"rows": len(pairs) * args["epochs"], "train_s": train_s, "e2e_s": time.perf_counter() - started,
         "peak_mb": _peak_rss_mb()}
    )  # fmt: skip


def _in_child(target: Any, args: dict[str, Any]) -> dict[str, float]:
    context = mp.get_context("spawn")
    queue: mp.Queue[dict[str, float]] = context.Queue()
    process = context.Process(target=target, args=(args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    """Run both sides and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=128)
    args = vars(parser.parse_args())
    plain = _in_child(_plain, args)
    like_for_like = _in_child(_ours, {**args, "recipe_dropout": False})
    ours = _in_child(_ours, {**args, "recipe_dropout": True})
    print(f"\nMNRL, batch {args['batch_size']}, {args['max_seq_length']} tokens, {args['epochs']} epoch(s), CPU "
          f"({os.cpu_count()} cores), bundled SciFact subset\n")  # fmt: skip
    print("| trainer | rows | train s | rows/s | peak RSS MB | end-to-end s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in (
        ("plain sentence-transformers", plain),
        ("rag_factory fine_tune, the model's own dropout", like_for_like),
        ("rag_factory fine_tune, the recipe's dropout (off)", ours),
    ):
        rate = row["rows"] / row["train_s"]
        print(f"| {name} | {row['rows']:.0f} | {row['train_s']:.1f} | {rate:.2f} | {row['peak_mb']:.0f} | "
              f"{row['e2e_s']:.1f} |")  # fmt: skip
    plain_rate = plain["rows"] / plain["train_s"]
    for name, row in (("same dropout", like_for_like), ("recipe", ours)):
        print(f"fine_tune ({name}) / plain rows/s: {row['rows'] / row['train_s'] / plain_rate:.2f}x")


if __name__ == "__main__":
    main()

"""Helpers of the fine-tuning tests: writing BEIR datasets and fast run settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rag_factory.models.training.config import FineTuneConfig


def write_beir(
    root: Path,
    corpus: dict[str, tuple[str, str]],
    queries: dict[str, str],
    qrels: dict[str, dict[str, list[str]]],
) -> Path:
    """Write a BEIR-layout dataset: ``corpus`` id -> (title, text), ``qrels`` split -> qid -> doc ids."""
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        for doc_id, (title, text) in corpus.items():
            handle.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (root / "queries.jsonl").open("w", encoding="utf-8") as handle:
        for qid, text in queries.items():
            handle.write(json.dumps({"_id": qid, "text": text}) + "\n")
    for split, judged in qrels.items():
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, docs in judged.items() for d in docs]
        (root / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def fast_config(data: Path, work_dir: Path, **overrides: Any) -> FineTuneConfig:
    """Settings small enough for a 2-core CPU: short sequences, few epochs, no ONNX export."""
    values: dict[str, Any] = {
        "data": data,
        "work_dir": work_dir,
        "output_dir": work_dir / f"model-{overrides.get('strategy', 'mnrl')}",
        "strategy": "mnrl",  # cheaper than the default's mined negatives; tests that need them say so
        "epochs": 2,
        "batch_size": 16,
        "learning_rate": 1e-4,
        "train_max_seq_length": 64,
        "max_seq_length": 128,
        "validation_corpus_size": 200,
        "early_stopping_patience": 0,
        "export_onnx": False,
    }
    values.update(overrides)
    return FineTuneConfig(**values)

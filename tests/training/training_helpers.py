"""Helpers of the fine-tuning tests: fast run settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rag_factory.models.training.config import FineTuneConfig


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

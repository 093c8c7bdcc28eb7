"""Save a trained model as a sentence-transformers directory with ONNX fp32 and int8 graphs inside it."""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rag_factory.models.embedding.model_files import size_on_disk

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

_CARD = """# Fine-tuned embedding model

Made by RAG Factory (`rag-factory train`). Dataset, strategy, hyperparameters and metrics are in
`rag_factory_training.json`. No training examples are copied into this card.
"""


def export_model(
    model: SentenceTransformer,
    output_dir: Path,
    *,
    onnx: bool = True,
    calibration_texts: Sequence[str] | None = None,
) -> float:
    """Write ``model`` to ``output_dir`` (replaced), with ``onnx/model.onnx`` and ``onnx/model_int8.onnx`` if ``onnx``.

    The sentence-transformers card generator is skipped: it would copy training rows into README.md.
    The ONNX graphs sit where our ONNX loader looks in a sentence-transformers layout, so one
    registered directory serves both as ``sentence_transformers`` and, with ``use_onnx`` or int8, via
    ONNX. ``calibration_texts`` (queries and documents of the training domain) calibrate the int8 graph.

    Returns:
        Size of the directory in MB.
    """
    import shutil

    shutil.rmtree(output_dir, ignore_errors=True)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(output_dir), create_model_card=False)
    (output_dir / "README.md").write_text(_CARD, encoding="utf-8")
    if onnx:
        from rag_factory.models.embedding.onnx_export import export_onnx

        export_onnx(output_dir, output_dir / "onnx", int8=True, calibration_texts=calibration_texts)
    return size_on_disk(output_dir) / 1e6


def measure_latency_ms(model: SentenceTransformer, texts: list[str], repeats: int = 3) -> float:
    """Median milliseconds to embed ``texts`` as one batch (after one warm-up call)."""
    model.encode(texts, batch_size=len(texts) or 1)
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.encode(texts, batch_size=len(texts) or 1)
        timings.append((time.perf_counter() - started) * 1e3)
    return statistics.median(timings)

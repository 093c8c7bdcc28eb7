"""Loading sentence-transformers models offline, seeding, and their ``encode`` as a plain function."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from rag_factory.models.training.precision import ResolvedPrecision, autocast
from rag_factory.retrieval.exact_search import Encoder

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

NO_WIDGET_EXAMPLES = "rag-factory copies no training examples into model cards"


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (the trainer seeds again from its arguments)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_sentence_transformer(path: Path | str, device: str) -> SentenceTransformer:
    """Load a sentence-transformers (or plain transformers) directory without touching any hub."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device=device, local_files_only=True)
    # Widget examples would copy training texts into the model card. The trainer samples them (behind
    # a "Computing widget examples" bar) whenever the widget is empty, whatever this flag says, so a
    # fixed widget is set too. Exports write their own card anyway (export.py).
    model.model_card_data.generate_widget_examples = False
    model.model_card_data.widget = [{"text": NO_WIDGET_EXAMPLES}]
    return model


def encoder_of(
    model: SentenceTransformer, max_seq_length: int, progress: bool = False, precision: ResolvedPrecision = "fp32"
) -> Encoder:
    """``model.encode`` at ``max_seq_length`` with normalised float32 output, in ``precision``."""

    def encode(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        previous, model.max_seq_length = model.max_seq_length, max_seq_length
        try:
            with autocast(precision, model.device.type):
                vectors = model.encode(
                    list(texts), batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                    show_progress_bar=progress,
                )  # fmt: skip
        finally:
            model.max_seq_length = previous
        return np.asarray(vectors, dtype=np.float32)

    return encode

"""Fast tokenizers from ``tokenizer.json``, reset to pad per batch and truncate at the model's limit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from rag_factory.errors import InvalidConfigError

IntArray = npt.NDArray[np.int64]


def load_tokenizer(directory: Path, max_seq_length: int) -> Tokenizer:
    """Load ``tokenizer.json`` from ``directory`` and configure padding and truncation.

    The bundled MiniLM ``tokenizer.json`` fixes padding and truncation at 128 tokens; we pad to the
    longest text of each batch instead and truncate at the model's ``max_seq_length``, which is what
    sentence-transformers does.
    """
    path = directory / "tokenizer.json"
    if not path.is_file():
        raise InvalidConfigError(f"no tokenizer.json in {str(directory)!r}; a fast tokenizer file is required")
    tokenizer = Tokenizer.from_file(str(path))
    padding = tokenizer.padding or {}
    pad_id = int(padding.get("pad_id", 0))
    pad_token = str(padding.get("pad_token", "[PAD]"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    tokenizer.enable_truncation(max_length=max_seq_length)
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
    return tokenizer


def tokenize(tokenizer: Tokenizer, texts: list[str]) -> dict[str, IntArray]:
    """Tokenize one batch into ``input_ids``, ``attention_mask`` and ``token_type_ids`` arrays."""
    encodings = tokenizer.encode_batch(texts)
    return {
        "input_ids": np.asarray([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.asarray([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.asarray([e.type_ids for e in encodings], dtype=np.int64),
    }

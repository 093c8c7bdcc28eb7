"""What a model directory declares about itself: token limit, pooling, normalisation, size."""

from __future__ import annotations

import json
from pathlib import Path

from rag_factory.models.embedding.models import PoolingStrategy

# Written next to our ONNX exports so the graph is self-describing without sentence-transformers.
ONNX_EXPORT_CONFIG = "rag_factory_onnx.json"

_ST_POOLING_KEYS = {
    "pooling_mode_cls_token": PoolingStrategy.CLS,
    "pooling_mode_max_tokens": PoolingStrategy.MAX,
    "pooling_mode_weightedmean_tokens": PoolingStrategy.WEIGHTED_MEAN,
    "pooling_mode_mean_tokens": PoolingStrategy.MEAN,
}


def read_json(path: Path) -> dict[str, object]:
    """Read a JSON object from ``path``, or return an empty dict if the file is absent."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def model_max_seq_length(directory: Path, default: int = 512) -> int:
    """The token limit a model directory declares, preferring the sentence-transformers setting.

    sentence-transformers 6 no longer writes ``max_seq_length`` to ``sentence_bert_config.json``; it
    saves the limit as the tokenizer's ``model_max_length``. Without reading that, a fine-tuned
    MiniLM (256 tokens) was exported and served at its 512 positions.
    """
    for name in ("sentence_bert_config.json", ONNX_EXPORT_CONFIG):
        value = read_json(directory / name).get("max_seq_length")
        if isinstance(value, int) and value > 0:
            return value
    limit = read_json(directory / "config.json").get("max_position_embeddings")
    positions = min(limit, default) if isinstance(limit, int) and limit > 0 else default
    # Tokenizers without a limit store a huge sentinel (int(1e30)); the positions bound it.
    tokenizer_limit = read_json(directory / "tokenizer_config.json").get("model_max_length")
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < positions:
        return tokenizer_limit
    return positions


def declared_pooling(directory: Path) -> PoolingStrategy | None:
    """The pooling a model directory declares (our export config or a sentence-transformers layout)."""
    exported = read_json(directory / ONNX_EXPORT_CONFIG).get("pooling_strategy")
    if isinstance(exported, str):
        return PoolingStrategy(exported)
    st_pooling = read_json(directory / "1_Pooling" / "config.json")
    if "pooling_mode" in st_pooling and isinstance(st_pooling["pooling_mode"], str):
        mode = st_pooling["pooling_mode"].replace("lasttoken", "cls")
        return PoolingStrategy(mode) if mode in PoolingStrategy._value2member_map_ else None
    for key, strategy in _ST_POOLING_KEYS.items():
        if st_pooling.get(key):
            return strategy
    return None


def size_on_disk(path: Path) -> int:
    """Bytes used by a file, or by every file under a directory."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

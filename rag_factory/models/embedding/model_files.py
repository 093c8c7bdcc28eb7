"""What a model directory declares about itself: token limit, pooling, normalisation, size."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


# Config files are small; anything bigger is not one (and is not read whole just to find out).
_MAX_CONFIG_BYTES = 1024 * 1024
# Where transformer configs keep the width of their token embeddings (BERT-likes, T5, DistilBERT, GPT-2).
_WIDTH_KEYS = ("hidden_size", "d_model", "dim", "n_embd")
# sentence-transformers Pooling modes; the pooled vector concatenates one vector per mode switched on.
_ST_POOLING_MODES = (
    "pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_tokens",
    "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken",
)  # fmt: skip
# sentence-transformers modules that keep the vector's length.
_ST_SAME_WIDTH = ("Normalize", "Dropout", "LayerNorm")


def declared_embedding_dim(directory: Path, model_format: str) -> int | None:
    """The vector length a model directory declares, read from its config files without loading the model.

    Our ONNX exports say it in ``rag_factory_onnx.json``; a sentence-transformers directory through its
    modules (the transformer's width, times the pooling modes, or the last Dense layer's ``out_features``);
    a Hugging Face directory through ``config.json``. None when the files do not say it plainly (custom
    PyTorch modules, ONNX graphs from elsewhere, unknown module types, unreadable files): the caller then
    cannot check, rather than refuse.

    Args:
        directory: The model's directory (a file gives None).
        model_format: A ``ModelFormat`` value.
    """
    if not directory.is_dir():
        return None
    if model_format == "onnx":
        return _positive_int(_small_json(directory / ONNX_EXPORT_CONFIG).get("embedding_dim"))
    if model_format == "huggingface":
        return _transformer_width(directory)
    if model_format == "sentence_transformers":
        return _sentence_transformers_dim(directory)
    return None


def _sentence_transformers_dim(directory: Path) -> int | None:
    modules = _small_json(directory / "modules.json", expect=list)
    if not modules:
        return _transformer_width(directory)  # loaded as a transformer with mean pooling
    dim = None
    for module in modules:
        if not isinstance(module, dict) or not isinstance(module.get("type"), str):
            return None
        kind = str(module["type"]).rsplit(".", 1)[-1]
        folder = directory / str(module.get("path") or "")
        if kind == "Transformer":
            dim = _transformer_width(folder)
        elif kind == "Pooling":
            config = _small_json(folder / "config.json")
            modes = sum(1 for mode in _ST_POOLING_MODES if config.get(mode) is True)
            width = _positive_int(config.get("word_embedding_dimension"))
            dim = width * modes if width is not None and modes else None
        elif kind == "Dense":
            dim = _positive_int(_small_json(folder / "config.json").get("out_features"))
        elif kind not in _ST_SAME_WIDTH:
            return None  # a module we cannot size from its files
    return dim


def _transformer_width(directory: Path) -> int | None:
    config = _small_json(directory / "config.json")
    return next((width for key in _WIDTH_KEYS if (width := _positive_int(config.get(key))) is not None), None)


def _small_json(path: Path, expect: type = dict) -> Any:
    # Unlike read_json, never raises: a missing, huge, special or malformed file says nothing.
    try:
        if not path.is_file() or path.stat().st_size > _MAX_CONFIG_BYTES:
            return expect()
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return expect()
    return data if isinstance(data, expect) else expect()


def _positive_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

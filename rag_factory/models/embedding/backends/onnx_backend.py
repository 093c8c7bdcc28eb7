"""ONNX Runtime backend: tokenizers + ORT + numpy pooling; it must never import torch."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from rag_factory.errors import InvalidConfigError, ModelLoadError
from rag_factory.models.embedding.backends.base import BackendInfo, EmbeddingModel
from rag_factory.models.embedding.model_files import (
    declared_pooling,
    model_max_seq_length,
)
from rag_factory.models.embedding.models import ModelConfig, PoolingStrategy
from rag_factory.models.embedding.pooling import FloatArray, pool
from rag_factory.models.embedding.tokenization import load_tokenizer, tokenize

logger = logging.getLogger(__name__)

# Our own export names int8 files model_int8.onnx; sentence-transformers / optimum use these.
_INT8_NAMES = (
    "model_int8.onnx",
    "model_qint8_avx512_vnni.onnx",
    "model_qint8_avx2.onnx",
    "model_quint8_avx2.onnx",
)


def find_onnx_files(path: Path) -> tuple[Path, Path]:
    """Locate ``(model directory holding the tokenizer, fp32 onnx file)`` for a path.

    Accepts a ``.onnx`` file, a directory with ``model.onnx``, or a sentence-transformers layout
    with ``onnx/model.onnx`` (tokenizer at the root).
    """
    if path.is_file() and path.suffix == ".onnx":
        root = path.parent.parent if path.parent.name == "onnx" else path.parent
        return root, path
    for candidate in (path / "model.onnx", path / "onnx" / "model.onnx"):
        if candidate.is_file():
            return path, candidate
    raise InvalidConfigError(
        f"format 'onnx' expects model.onnx or onnx/model.onnx under {str(path)!r}; none was found",
        path=str(path),
    )


def find_int8_file(onnx_file: Path) -> Path | None:
    """An int8 sibling of ``onnx_file`` if one was exported."""
    if "int8" in onnx_file.name:
        return onnx_file
    for name in _INT8_NAMES:
        candidate = onnx_file.parent / name
        if candidate.is_file():
            return candidate
    return None


class OnnxEmbeddingModel(EmbeddingModel):
    """A model served by ONNX Runtime on CPU (or CUDA when the provider is installed)."""

    def __init__(self, root: Path, onnx_file: Path, config: ModelConfig) -> None:
        import onnxruntime as ort  # imported here: a 0.2 s import only the ONNX path pays

        declared_limit = model_max_seq_length(root)
        max_seq_length = min(config.max_seq_length or declared_limit, declared_limit)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle ORT worker threads spin for a while by default. A sidecar shares the CPU with its host
        # application (and with other models' sessions), so spinning threads steal cores from them.
        spinning = "1" if config.additional_config.get("ort_allow_spinning", False) else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        threads = config.additional_config.get("ort_intra_op_threads")
        if isinstance(threads, int) and threads > 0:
            options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if config.device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self._session = ort.InferenceSession(str(onnx_file), options, providers=providers)
        except Exception as exc:
            raise ModelLoadError(f"ONNX Runtime could not load {str(onnx_file)!r}: {exc}") from exc
        self._input_names = {i.name for i in self._session.get_inputs()}
        self._tokenizer = load_tokenizer(root, max_seq_length)
        explicit_pooling = "pooling_strategy" in config.model_fields_set
        self._pooling = config.pooling_strategy if explicit_pooling else declared_pooling(root) or PoolingStrategy.MEAN
        output = self._session.get_outputs()[0]
        dim = output.shape[-1]
        if not isinstance(dim, int):
            dim = int(self._encode_batch(["dimension probe"]).shape[1])
        precision = "int8" if "int8" in onnx_file.name else "fp32"
        super().__init__(
            info=BackendInfo(
                backend="onnx",
                precision=precision,
                device=config.device,
                source=str(onnx_file),
                details={"pooling": self._pooling.value, "provider": self._session.get_providers()[0]},
            ),
            embedding_dim=dim,
            max_seq_length=max_seq_length,
            normalize=config.normalize_embeddings,
            batch_size=config.batch_size,
            memory_bytes=onnx_file.stat().st_size,
        )

    def _encode_batch(self, texts: list[str]) -> FloatArray:
        features = tokenize(self._tokenizer, texts)
        feeds = {name: value for name, value in features.items() if name in self._input_names}
        output = self._session.run(None, feeds)[0]
        if output.ndim == 2:  # the graph pools itself
            return np.asarray(output, dtype=np.float32)
        return pool(np.asarray(output, dtype=np.float32), features["attention_mask"], self._pooling)

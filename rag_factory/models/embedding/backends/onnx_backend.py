"""ONNX backend: tokenizers + ONNX Runtime or OpenVINO + numpy pooling; it must never import torch."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rag_factory.arrays import VectorArray
from rag_factory.errors import InvalidConfigError
from rag_factory.models.embedding.backends.base import BackendInfo, EmbeddingModel
from rag_factory.models.embedding.backends.graph_runners import GraphRunner, OpenVinoRunner, OrtRunner
from rag_factory.models.embedding.model_files import (
    declared_pooling,
    model_max_seq_length,
)
from rag_factory.models.embedding.models import ModelConfig, PoolingStrategy
from rag_factory.models.embedding.pooling import pool
from rag_factory.models.embedding.tokenization import IntArray, load_tokenizer, tokenize

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


def _runner_for(onnx_file: Path, config: ModelConfig, precision: str) -> GraphRunner:
    """OpenVINO for static int8 graphs on CPU (its fused int8 kernels are 1.5x ONNX Runtime's), else ORT.

    ``additional_config["onnx_runtime"]`` = ``"onnxruntime"`` or ``"openvino"`` forces one, and
    ``additional_config["onnx_threads"]`` caps the threads of either engine.
    """
    extra = config.additional_config
    # "ort_intra_op_threads" is the key's first name, from when only ONNX Runtime read it.
    threads = extra.get("onnx_threads", extra.get("ort_intra_op_threads"))
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise InvalidConfigError(f"onnx_threads must be a positive integer, not {threads!r}")
    wanted = extra.get("onnx_runtime", "auto")
    if wanted not in ("auto", "onnxruntime", "openvino"):
        raise InvalidConfigError(f"onnx_runtime must be 'auto', 'onnxruntime' or 'openvino', not {wanted!r}")
    use_openvino = wanted == "openvino"
    if wanted == "auto" and precision == "int8" and not config.device.startswith("cuda"):
        from rag_factory.models.embedding.static_int8 import is_static_int8

        use_openvino = is_static_int8(onnx_file) and importlib.util.find_spec("openvino") is not None
    if use_openvino:
        streams = extra.get("openvino_streams")
        return OpenVinoRunner(onnx_file, threads=threads, streams=streams if isinstance(streams, int) else None)
    spinning = bool(extra.get("ort_allow_spinning", False))
    return OrtRunner(onnx_file, device=config.device, threads=threads, spinning=spinning)


class OnnxEmbeddingModel(EmbeddingModel):
    """A model whose ONNX graph runs on ONNX Runtime (CPU or CUDA) or, for static int8, OpenVINO."""

    def __init__(self, root: Path, onnx_file: Path, config: ModelConfig) -> None:
        declared_limit = model_max_seq_length(root)
        max_seq_length = min(config.max_seq_length or declared_limit, declared_limit)
        precision = "int8" if "int8" in onnx_file.name else "fp32"
        self._runner = _runner_for(onnx_file, config, precision)
        self._tokenizer = load_tokenizer(root, max_seq_length)
        explicit_pooling = "pooling_strategy" in config.model_fields_set
        self._pooling = config.pooling_strategy if explicit_pooling else declared_pooling(root) or PoolingStrategy.MEAN
        dim = self._runner.output_dim
        if not isinstance(dim, int):
            dim = int(self._encode_batch(["dimension probe"]).shape[1])
        super().__init__(
            info=BackendInfo(
                backend="onnx",
                precision=precision,
                device=config.device,
                source=str(onnx_file),
                details={
                    "pooling": self._pooling.value,
                    "provider": self._runner.name,
                    "threads": str(self._runner.threads or "default"),
                },
            ),
            embedding_dim=dim,
            max_seq_length=max_seq_length,
            normalize=config.normalize_embeddings,
            batch_size=config.batch_size,
            memory_bytes=onnx_file.stat().st_size,
        )

    def _feeds(self, texts: list[str]) -> dict[str, IntArray]:
        features = tokenize(self._tokenizer, texts)
        return {name: value for name, value in features.items() if name in self._runner.input_names}

    def _pooled(self, output: VectorArray, feeds: dict[str, IntArray]) -> VectorArray:
        if output.ndim == 2:  # the graph pools itself
            return np.array(output, dtype=np.float32)
        return pool(np.asarray(output, dtype=np.float32), feeds["attention_mask"], self._pooling)

    def _encode_batch(self, texts: list[str]) -> VectorArray:
        feeds = self._feeds(texts)
        return self._pooled(self._runner.run(feeds), feeds)

    def _encode_batches(self, batches: list[list[str]]) -> Iterator[VectorArray]:
        if len(batches) == 1:  # a lone batch (the serving path) wants latency, not overlap
            yield self._encode_batch(batches[0])
            return
        yield from self._runner.run_many((self._feeds(texts) for texts in batches), self._pooled)

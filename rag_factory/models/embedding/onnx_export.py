"""Export a transformer model to ONNX (fp32) and int8, with its tokenizer and pooling settings.

sentence-transformers 6 has no ONNX exporter without optimum (which pins older transformers), so we
export with ``torch.onnx.export(dynamo=False)`` and quantise statically with NNCF.
"""

from __future__ import annotations

import inspect
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag_factory.errors import InvalidConfigError, ModelLoadError
from rag_factory.models.embedding.hub import resolve_model_path
from rag_factory.models.embedding.model_files import (
    ONNX_EXPORT_CONFIG,
    declared_pooling,
    model_max_seq_length,
)
from rag_factory.models.embedding.models import PoolingStrategy

_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "config.json",
    "sentence_bert_config.json",
)
OPSET = 17


def quantize_int8(
    fp32_file: Path,
    int8_file: Path,
    *,
    tokenizer_dir: Path | None = None,
    calibration_texts: Sequence[str] | None = None,
) -> Path:
    """Static int8 quantisation of an exported graph, calibrated on texts (cosine ≈ 0.997 to fp32).

    ``tokenizer_dir`` defaults to the graph's directory (or its parent for ``onnx/model.onnx``).
    See :mod:`rag_factory.models.embedding.static_int8` for why static beats dynamic here.
    """
    from rag_factory.models.embedding.static_int8 import quantize_static_int8

    if tokenizer_dir is None:
        from rag_factory.models.embedding.backends.onnx_backend import find_onnx_files

        tokenizer_dir, _ = find_onnx_files(fp32_file)
    limit = model_max_seq_length(tokenizer_dir)
    return quantize_static_int8(
        fp32_file, int8_file, tokenizer_dir, max_seq_length=limit, calibration_texts=calibration_texts
    )


def export_onnx(
    model_path: str | Path,
    output_dir: str | Path,
    *,
    pooling: PoolingStrategy | None = None,
    normalize: bool = True,
    int8: bool = True,
    calibration_texts: Sequence[str] | None = None,
) -> Path:
    """Export a Hugging Face or sentence-transformers directory to an ONNX directory.

    The output holds ``model.onnx`` (fp32 token embeddings), ``model_int8.onnx`` when ``int8``,
    the tokenizer files and ``rag_factory_onnx.json`` (pooling, normalisation, token limit), so the
    ONNX backend reproduces the source model's vectors without torch.

    Args:
        model_path: Source directory or well-known hub id.
        output_dir: Directory to create (its content is replaced).
        pooling: Pooling to record; defaults to what the source declares, else mean.
        normalize: Whether served vectors are L2-normalised.
        int8: Also write a statically quantised int8 graph.
        calibration_texts: Texts that calibrate the int8 graph; defaults to a bundled SciFact sample.

    Returns:
        ``output_dir``.
    """
    import torch
    from transformers import AutoModel

    source = resolve_model_path(str(model_path))
    if not (source / "config.json").is_file():
        raise InvalidConfigError(f"{str(source)!r} has no config.json; only transformer directories can be exported")
    out = Path(output_dir)
    tmp = out.with_name(out.name + ".tmp-export")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        # Eager attention traces to plain ops; SDPA kernels export less portably.
        model = AutoModel.from_pretrained(str(source), local_files_only=True, attn_implementation="eager").eval()
    except Exception as exc:
        raise ModelLoadError(f"could not load {str(source)!r} for export: {exc}") from exc
    accepted = inspect.signature(model.forward).parameters
    input_names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in accepted]

    class _KeywordWrapper(torch.nn.Module):
        # torch.onnx.export passes positional tensors; transformers models want keywords.
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *tensors: Any) -> Any:
            return self.inner(**dict(zip(input_names, tensors, strict=True))).last_hidden_state

    example = tuple(torch.ones((2, 8), dtype=torch.long) for _ in input_names)
    dynamic = {name: {0: "batch", 1: "tokens"} for name in [*input_names, "token_embeddings"]}
    fp32_file = tmp / "model.onnx"
    with torch.no_grad():
        torch.onnx.export(
            _KeywordWrapper(model),
            example,
            str(fp32_file),
            input_names=input_names,
            output_names=["token_embeddings"],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
    for name in _TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, tmp / name)
    if int8:
        quantize_int8(fp32_file, tmp / "model_int8.onnx", tokenizer_dir=tmp, calibration_texts=calibration_texts)
    export_config = {
        "pooling_strategy": (pooling or declared_pooling(source) or PoolingStrategy.MEAN).value,
        "normalize_embeddings": normalize,
        "max_seq_length": model_max_seq_length(source),
        "embedding_dim": int(model.config.hidden_size),
        "source": str(source),
        "opset": OPSET,
    }
    (tmp / ONNX_EXPORT_CONFIG).write_text(json.dumps(export_config, indent=2), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out

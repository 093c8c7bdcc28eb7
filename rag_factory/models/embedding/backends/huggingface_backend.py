"""Hugging Face ``AutoModel`` backend with our own pooling (mean, max, cls, weighted_mean)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from rag_factory.errors import ModelLoadError
from rag_factory.models.embedding.backends.token_model import TokenEmbeddingModel
from rag_factory.models.embedding.models import ModelConfig


class HuggingFaceModel(TokenEmbeddingModel):
    """An encoder loaded with ``transformers.AutoModel``; pooling follows the config."""

    backend_name = "huggingface"

    def __init__(self, path: Path, config: ModelConfig) -> None:
        try:
            from transformers import AutoModel

            module = AutoModel.from_pretrained(
                str(path),
                local_files_only=True,
                trust_remote_code=False,
                **config.additional_config.get("model_kwargs", {}),
            )
        except Exception as exc:
            raise ModelLoadError(f"could not load Hugging Face model {str(path)!r}: {exc}") from exc
        super().__init__(tokenizer_dir=path, module=module, config=config, source=path)

    def _accepted_inputs(self) -> set[str]:
        # BERT takes token_type_ids; RoBERTa-like models refuse them.
        parameters = inspect.signature(self._module.forward).parameters
        return {name for name in ("input_ids", "attention_mask", "token_type_ids") if name in parameters}

    def _forward(self, inputs: dict[str, Any]) -> Any:
        return self._module(**inputs).last_hidden_state

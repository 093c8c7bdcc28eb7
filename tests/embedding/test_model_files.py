"""What a model directory declares about its token limit."""

from __future__ import annotations

import json
from pathlib import Path

from rag_factory.models.embedding.model_files import model_max_seq_length


def _write(directory: Path, name: str, content: dict[str, object]) -> None:
    (directory / name).write_text(json.dumps(content), encoding="utf-8")


def test_the_sentence_transformers_setting_wins(tmp_path: Path) -> None:
    _write(tmp_path, "sentence_bert_config.json", {"max_seq_length": 128})
    _write(tmp_path, "tokenizer_config.json", {"model_max_length": 256})
    _write(tmp_path, "config.json", {"max_position_embeddings": 512})
    assert model_max_seq_length(tmp_path) == 128


def test_a_sentence_transformers_6_directory_declares_its_limit_through_the_tokenizer(tmp_path: Path) -> None:
    # sentence-transformers 6 saves the limit only as the tokenizer's model_max_length.
    _write(tmp_path, "sentence_bert_config.json", {"transformer_task": "feature-extraction"})
    _write(tmp_path, "tokenizer_config.json", {"model_max_length": 256})
    _write(tmp_path, "config.json", {"max_position_embeddings": 512})
    assert model_max_seq_length(tmp_path) == 256


def test_a_tokenizer_without_a_limit_falls_back_to_the_positions(tmp_path: Path) -> None:
    _write(tmp_path, "tokenizer_config.json", {"model_max_length": int(1e30)})
    _write(tmp_path, "config.json", {"max_position_embeddings": 512})
    assert model_max_seq_length(tmp_path) == 512
    assert model_max_seq_length(tmp_path / "missing") == 512  # nothing declared: the default

"""What a model directory declares about itself: its token limit and its vector length."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag_factory.models.embedding.model_files import ONNX_EXPORT_CONFIG, declared_embedding_dim, model_max_seq_length


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


# -- issue 18, item 14: the vector length a directory declares, read without loading the model --------


def _sentence_transformers_dir(directory: Path, *modules: tuple[str, str, dict[str, object]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory, "config.json", {"hidden_size": 384, "model_type": "bert"})
    entries = []
    for index, (kind, path, config) in enumerate(modules):
        entries.append({"idx": index, "name": str(index), "path": path, "type": f"sentence_transformers.models.{kind}"})
        if path:
            (directory / path).mkdir(exist_ok=True)
            _write(directory / path, "config.json", config)
    (directory / "modules.json").write_text(json.dumps(entries), encoding="utf-8")
    return directory


MEAN = {"word_embedding_dimension": 384, "pooling_mode_mean_tokens": True}


@pytest.mark.parametrize(
    ("modules", "expected"),
    [
        ((("Transformer", "", {}), ("Pooling", "1_Pooling", MEAN), ("Normalize", "2_Normalize", {})), 384),
        ((("Transformer", "", {}), ("Pooling", "1_Pooling", {**MEAN, "pooling_mode_max_tokens": True})), 768),
        ((("Transformer", "", {}), ("Pooling", "1_Pooling", MEAN), ("Dense", "2_Dense", {"out_features": 256})), 256),
        ((("Transformer", "", {}), ("Pooling", "1_Pooling", MEAN), ("Projector", "2_Custom", {})), None),
    ],
    ids=["mean-pooled", "mean-and-max-concatenated", "dense-projection", "unknown-module"],
)
def test_a_sentence_transformers_directory_declares_its_dimension_through_its_modules(
    tmp_path: Path, modules: tuple[tuple[str, str, dict[str, object]], ...], expected: int | None
) -> None:
    directory = _sentence_transformers_dir(tmp_path / "st", *modules)
    assert declared_embedding_dim(directory, "sentence_transformers") == expected


def test_other_formats_declare_their_dimension_where_their_files_say_it(tmp_path: Path) -> None:
    _write(tmp_path, "config.json", {"hidden_size": 768})
    _write(tmp_path, ONNX_EXPORT_CONFIG, {"embedding_dim": 384})
    assert declared_embedding_dim(tmp_path, "huggingface") == 768
    assert declared_embedding_dim(tmp_path, "onnx") == 384  # our export says what the graph produces
    assert declared_embedding_dim(tmp_path, "pytorch") is None  # a custom module: only loading tells


@pytest.mark.parametrize(
    "content", ["{not json", '"a string"', '{"hidden_size": true}'], ids=["broken", "no-object", "not-a-number"]
)
def test_files_that_do_not_say_plainly_declare_nothing(tmp_path: Path, content: str) -> None:
    (tmp_path / "config.json").write_text(content, encoding="utf-8")
    assert declared_embedding_dim(tmp_path, "huggingface") is None
    assert declared_embedding_dim(tmp_path / "config.json", "huggingface") is None  # a file, not a directory

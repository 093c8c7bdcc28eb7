"""Shared fixtures: the real bundled model, loaded once per session, and a real ONNX export."""

from __future__ import annotations

import os

# Process-edge settings, as the CLI applies them: model hubs are unreachable here.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from rag_factory.data import bundled_dataset  # noqa: E402
from rag_factory.data.beir import BeirDataset, load_beir  # noqa: E402
from rag_factory.models.embedding import CustomModelLoader  # noqa: E402

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """Directory of the bundled all-MiniLM-L6-v2 (sentence-transformers layout)."""
    from rag_factory.models.embedding.hub import resolve_model_path

    return resolve_model_path(MINILM_ID)


@pytest.fixture(scope="session")
def scifact_mini() -> BeirDataset:
    """The SciFact subset bundled with the package."""
    return load_beir(bundled_dataset("scifact_mini"))


@pytest.fixture(scope="session")
def sample_texts(scifact_mini: BeirDataset) -> list[str]:
    """A mix of short queries and long documents (longer than 256 tokens, so truncation matters)."""
    queries = list(scifact_mini.queries.values())[:24]
    docs = [d.as_text() for d in list(scifact_mini.corpus.values())[:24]]
    return queries + docs + ["", "x", "a " * 2000]


@pytest.fixture(scope="session")
def model_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def onnx_export_dir(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ONNX export (fp32 + int8) of the bundled model, made once per session."""
    from rag_factory.models.embedding.onnx_export import export_onnx

    return export_onnx(minilm_dir, tmp_path_factory.mktemp("onnx") / "minilm-onnx")


@pytest.fixture(scope="session")
def shared_loader(model_cache_dir: Path) -> Iterator[CustomModelLoader]:
    """One loader for the session so each real model is loaded once."""
    loader = CustomModelLoader(cache_dir=model_cache_dir)
    yield loader
    loader.clear_cache()

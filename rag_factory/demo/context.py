"""What the demo stages share: the work directory, the registry, the loader and the dataset."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_factory.data.beir import BeirDataset
from rag_factory.models.embedding import CustomModelLoader, ModelRegistry


@dataclass
class DemoContext:
    """State passed from stage to stage."""

    workdir: Path
    registry: ModelRegistry
    loader: CustomModelLoader
    dataset: BeirDataset
    sidecar_address: str = ""
    sidecar_http_address: str = ""  # HOST:PORT of the same sidecar's HTTP API ("" when it is off)
    models: dict[str, str] = field(default_factory=dict)  # role ("base", "onnx", "fine_tuned") -> model id
    # The LlamaIndex nodes and pinned index of stage 5, reused by the A/B and re-embedding stages. Typed
    # loosely so that importing the context needs neither LlamaIndex nor the plugin.
    nodes: list[Any] = field(default_factory=list)
    index: Any = None

    @property
    def embedding_cache(self) -> Path:
        """Corpus vectors shared by the stages: written by fine-tuning, read by the A/B stage and the report."""
        return self.workdir / "embeddings"


def section(title: str) -> None:
    """Print a stage heading."""
    print(f"\n=== {title} ===", flush=True)


@contextmanager
def timed(label: str) -> Iterator[None]:
    """Print how long a block took."""
    started = time.perf_counter()
    yield
    print(f"{label}: {time.perf_counter() - started:.1f} s", flush=True)

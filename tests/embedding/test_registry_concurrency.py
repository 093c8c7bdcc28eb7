"""Concurrent writers (separate processes, and threads of one process) never corrupt the registry."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rag_factory.models.embedding.models import EmbeddingModelMetadata, ModelFormat
from rag_factory.models.embedding.registry import ModelRegistry

PER_WRITER = 50

# Each writer process registers PER_WRITER versions of one shared model name and points the
# shared alias at each new version right after registering it.
WRITER = textwrap.dedent(
    """
    import sys
    from rag_factory.models.embedding.models import EmbeddingModelMetadata
    from rag_factory.models.embedding.registry import ModelRegistry

    path, writer, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    registry = ModelRegistry(path)
    for i in range(count):
        metadata = EmbeddingModelMetadata(
            model_id=f"w{writer}-{i}", model_name="shared", version=f"{writer}.{i}.0",
            format="onnx", embedding_dim=8, max_seq_length=16, tags=[f"writer{writer}"],
        )
        registry.register_model(metadata, metrics={"step": float(i)})
        registry.set_alias("shared", "production", metadata.model_id)
    registry.close()
    """
)


@pytest.mark.slow
def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "reg"
    ModelRegistry(path).close()  # create the schema once, as a deployed registry would have it
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(n), str(PER_WRITER)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in (1, 2)
    ]
    for writer in writers:
        _, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr

    registry = ModelRegistry(path)
    ids = {m.model_id for m in registry.list_models(name="shared")}
    assert ids == {f"w{n}-{i}" for n in (1, 2) for i in range(PER_WRITER)}
    history = registry.alias_history("shared", "production")
    assert [e.action for e in history] == ["set"] * (2 * PER_WRITER)
    assert {e.model_id for e in history} == ids
    # Each event's "previous" is the event before it: no update was lost or interleaved.
    assert [e.previous_model_id for e in history[1:]] == [e.model_id for e in history[:-1]]
    assert registry.aliases("shared")["production"] == history[-1].model_id
    registry.close()
    with sqlite3.connect(path / "registry.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_threads_sharing_one_registry_lose_nothing(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    registry.register_model(
        EmbeddingModelMetadata(
            model_id="m", model_name="m", version="1.0.0", format=ModelFormat.ONNX,
            embedding_dim=8, max_seq_length=16,
        )
    )  # fmt: skip

    def record(i: int) -> None:
        registry.update_metrics("m", {f"metric_{i}": float(i)})

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(record, range(64)))
    assert registry.get_record("m").metrics == {f"metric_{i}": float(i) for i in range(64)}

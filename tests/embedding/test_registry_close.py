"""Closing a registry while other threads still read it: they carry on, nothing crashes.

A sidecar closes its registry on shutdown while background threads (the readiness monitor, the rollout
ticker) may be mid-query. Closing another thread's SQLite connection under it made that query fail with
"Cannot operate on a closed database", and at times crashed the whole process (a segmentation fault in CI).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from rag_factory.models.embedding import EmbeddingModelMetadata, ModelRegistry


def test_readers_in_other_threads_survive_repeated_closes(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(b"not a real graph; never loaded here")
    for number in range(20):
        metadata = EmbeddingModelMetadata(
            model_id=f"m{number}-1.0.0",
            model_name=f"m{number}",
            version="1.0.0",
            format="onnx",
            embedding_dim=4,
            max_seq_length=16,
        )
        registry.register_model(metadata, artifact_path=artifact)
    stop = threading.Event()
    failures: list[BaseException] = []
    reads = [0]

    def read() -> None:
        while not stop.is_set():
            try:
                assert len(registry.list_models()) == 20
                reads[0] += 1
            except BaseException as exc:  # collected: the assertion is made in the test's own thread
                failures.append(exc)
                return

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + 1.5
    closes = 0
    while time.monotonic() < deadline:
        registry.close()
        closes += 1
        time.sleep(0.001)
    stop.set()
    for reader in readers:
        reader.join(10)
    registry.close()
    assert failures == []
    assert closes > 100 and reads[0] > 100  # both sides really ran side by side
    # The closing thread itself may use the registry again: a fresh connection opens.
    assert registry.resolve("m3").model_id == "m3-1.0.0"

"""Jobs that start together on a fresh registry all get the one registration of the bundled base model.

Issue 18, item 15: three concurrent jobs each found the base unregistered and each registered it; two
failed with DUPLICATE_VERSION. Each job's worker registers the base in its own process, with its own
registry connection, as the threads here do (two of them: each registration copies the whole model).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rag_factory.jobs.fine_tune_job import register_base
from rag_factory.models.embedding import ModelRegistry
from rag_factory.models.embedding.hub import DEFAULT_BASE_MODEL

pytestmark = pytest.mark.slow  # loads the bundled model to read its dimension


def test_concurrent_jobs_share_one_registration_of_the_base(tmp_path: Path) -> None:
    barrier = threading.Barrier(2)

    def one_job() -> str:
        with ModelRegistry(tmp_path / "registry") as registry:
            barrier.wait()  # both look the base up before any registers it
            return register_base(registry, DEFAULT_BASE_MODEL).model_id

    with ThreadPoolExecutor(2) as pool:
        ids = list(pool.map(lambda _: one_job(), range(2)))

    assert ids == ["minilm-1.0.0"] * 2
    with ModelRegistry(tmp_path / "registry") as registry:
        assert [r.model_id for r in registry.list_models()] == ["minilm-1.0.0"]

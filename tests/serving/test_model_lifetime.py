"""Who owns a loaded model: the loader's cache. The engine serves what the cache holds, nothing more.

The memory budget (``cache_size_gb``) bounds what the sidecar keeps loaded: when the cache evicts a
model, the engine's micro-batcher for it finishes its queued requests and stops, the model is
released, and a later request for it loads it again.
"""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from rag_factory.arrays import VectorArray
from rag_factory.models.embedding import CustomModelLoader, ModelRegistry
from rag_factory.models.embedding.backends.base import BackendInfo, EmbeddingModel
from rag_factory.serving.batcher import BatchOutput, MicroBatcher
from rag_factory.serving.engine import EmbedCall, EmbeddingEngine
from tests.conftest import register_minilm_onnx

MODELS = ("minilm-a", "minilm-b", "minilm-c")
TEXTS = ["Aspirin lowers heart attack risk.", "BRCA1 mutations"]


@pytest.fixture
def registry(onnx_export_dir: Path, tmp_path: Path) -> Iterator[ModelRegistry]:
    """Three registrations of the same ONNX export; distinct loading options make them three cache entries."""
    registry = ModelRegistry(tmp_path / "registry")
    for number, model_id in enumerate(MODELS, start=1):
        register_minilm_onnx(
            registry, model_id, "1.0.0", onnx_export_dir, model_name=model_id, load_config={"batch_size": 8 * number}
        )
    yield registry
    registry.close()


@pytest.fixture
def engine(registry: ModelRegistry, model_cache_dir: Path) -> Iterator[EmbeddingEngine]:
    """An engine whose loader's budget holds two of the three models, not three."""
    _, probe = registry.load_model(MODELS[0], CustomModelLoader(cache_dir=model_cache_dir))
    budget_mb = 2.5 * probe.memory_bytes / (1024 * 1024)
    engine = EmbeddingEngine(
        registry, CustomModelLoader(cache_budget_mb=budget_mb, cache_dir=model_cache_dir), default_model=MODELS[0]
    )
    yield engine
    engine.close()


def _assert_engine_serves_what_the_cache_holds(engine: EmbeddingEngine, expected: set[str]) -> None:
    loaded = engine.loaded()
    cache = engine.loader.cache_info()
    assert {model_id for model_id, _ in loaded} == expected
    assert cache.entries == len(loaded)
    assert cache.used_bytes == sum(model.memory_bytes for _, model in loaded)
    assert cache.used_bytes <= cache.budget_bytes


def _batcher_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("batcher-")}


@pytest.mark.slow
def test_an_evicted_model_stops_being_served_and_is_loaded_again_on_demand(engine: EmbeddingEngine) -> None:
    threads_before = _batcher_threads()
    first = engine.embed(EmbedCall(TEXTS, model="minilm-a"))
    (worker_a,) = _batcher_threads() - threads_before
    model_a = weakref.ref(dict(engine.loaded())["minilm-a"])
    engine.embed(EmbedCall(TEXTS, model="minilm-b"))
    _assert_engine_serves_what_the_cache_holds(engine, {"minilm-a", "minilm-b"})

    engine.embed(EmbedCall(TEXTS, model="minilm-c"))  # over budget: the least recently used (a) goes

    _assert_engine_serves_what_the_cache_holds(engine, {"minilm-b", "minilm-c"})
    assert not worker_a.is_alive()  # its batcher finished its queue and stopped
    gc.collect()
    assert model_a() is None  # nothing in the engine keeps the evicted model in memory

    again = engine.embed(EmbedCall(TEXTS, model="minilm-a"))  # loaded again, evicting b
    assert again.served_by.model_id == "minilm-a" and not again.served_by.fallback
    np.testing.assert_allclose(again.vectors, first.vectors, atol=1e-6)
    _assert_engine_serves_what_the_cache_holds(engine, {"minilm-c", "minilm-a"})
    assert engine.readiness("minilm-b")[1] == "not_loaded"


@pytest.mark.slow
def test_requests_queued_on_a_model_being_evicted_complete(
    engine: EmbeddingEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.embed(EmbedCall(TEXTS, model="minilm-a"))
    engine.embed(EmbedCall(TEXTS, model="minilm-b"))
    model_a = dict(engine.loaded())["minilm-a"]
    encode, in_forward_pass = model_a.encode, threading.Event()

    def slow_encode(texts: Sequence[str], batch_size: int | None = None) -> VectorArray:
        in_forward_pass.set()
        time.sleep(0.5)
        return encode(texts, batch_size)

    monkeypatch.setattr(model_a, "encode", slow_encode)
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(engine.embed, EmbedCall(TEXTS, model="minilm-a"))
        assert in_forward_pass.wait(10)
        queued = pool.submit(engine.embed, EmbedCall(TEXTS[:1], model="minilm-a"))
        time.sleep(0.1)  # the second request waits in a's queue behind the running batch
        engine.embed(EmbedCall(TEXTS, model="minilm-b"))  # a is now the least recently used
        engine.embed(EmbedCall(TEXTS, model="minilm-c"))  # evicts a while it has work in hand
        done = [running.result(timeout=30), queued.result(timeout=30)]

    assert [(o.served_by.model_id, o.served_by.fallback, len(o.vectors)) for o in done] == [
        ("minilm-a", False, 2),
        ("minilm-a", False, 1),
    ]
    _assert_engine_serves_what_the_cache_holds(engine, {"minilm-b", "minilm-c"})


class _SlowModel(EmbeddingModel):
    def __init__(self) -> None:
        super().__init__(
            info=BackendInfo("test", "fp32", "cpu", "memory"),
            embedding_dim=2,
            max_seq_length=8,
            normalize=False,
            batch_size=4,
            memory_bytes=1,
        )

    def _encode_batch(self, texts: list[str]) -> VectorArray:
        time.sleep(0.001)
        return np.ones((len(texts), 2), dtype=np.float32)


def test_closing_a_batcher_finishes_every_request_it_accepted() -> None:
    batcher = MicroBatcher(_SlowModel(), max_batch_texts=4, max_wait_ms=0.5, queue_capacity=10_000)
    accepted: list[Future[BatchOutput]] = []
    refused: list[Exception] = []
    stop = threading.Event()

    def submit_until_refused() -> None:
        while not stop.is_set():
            try:
                accepted.append(batcher.submit(["x"]))
            except Exception as exc:
                refused.append(exc)
                return

    submitters = [threading.Thread(target=submit_until_refused) for _ in range(4)]
    for thread in submitters:
        thread.start()
    time.sleep(0.05)
    batcher.close()
    stop.set()
    for thread in submitters:
        thread.join()

    assert refused and all(f.done() and f.result().vectors.shape == (1, 2) for f in accepted)

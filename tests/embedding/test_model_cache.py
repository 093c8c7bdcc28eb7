"""The loaded-model cache: LRU order, memory budget and load-once under concurrency."""

from __future__ import annotations

import threading
import time

import numpy as np

from rag_factory.models.embedding.backends.base import BackendInfo, EmbeddingModel
from rag_factory.models.embedding.cache import ModelCache


class SizedModel(EmbeddingModel):
    """A stand-in with a chosen memory size; the cache only looks at memory_bytes."""

    def __init__(self, megabytes: int) -> None:
        super().__init__(
            info=BackendInfo("test", "fp32", "cpu", "memory"),
            embedding_dim=2,
            max_seq_length=8,
            normalize=True,
            batch_size=4,
            memory_bytes=megabytes * 1_000_000,
        )
        self.closed = False

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        return np.ones((len(texts), 2), dtype=np.float32)

    def close(self) -> None:
        self.closed = True


def test_least_recently_used_model_is_evicted_when_the_budget_is_exceeded() -> None:
    cache = ModelCache(budget_bytes=250_000_000)
    a = cache.get_or_load("a", lambda: SizedModel(100))
    cache.get_or_load("b", lambda: SizedModel(100))
    cache.get("a")  # a is now more recent than b
    cache.get_or_load("c", lambda: SizedModel(100))
    assert cache.get("b") is None and cache.get("a") is a and cache.get("c") is not None
    assert cache.info().evictions == 1


def test_evicted_models_are_closed() -> None:
    cache = ModelCache(budget_bytes=150_000_000)
    first = cache.get_or_load("a", lambda: SizedModel(100))
    assert isinstance(first, SizedModel)
    cache.get_or_load("b", lambda: SizedModel(100))
    assert first.closed


def test_a_model_larger_than_the_budget_is_still_served_alone() -> None:
    cache = ModelCache(budget_bytes=10_000_000)
    cache.get_or_load("small", lambda: SizedModel(5))
    big = cache.get_or_load("big", lambda: SizedModel(50))
    assert cache.get("big") is big and cache.info().entries == 1


def test_concurrent_requests_for_one_model_load_it_once() -> None:
    cache = ModelCache(budget_bytes=10**9)
    loads = []

    def slow_load() -> EmbeddingModel:
        loads.append(1)
        time.sleep(0.2)
        return SizedModel(1)

    results: list[EmbeddingModel] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_load("m", slow_load))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1 and len({id(r) for r in results}) == 1


def test_encode_restores_input_order_after_sorting_by_length() -> None:
    class Echo(SizedModel):
        def _encode_batch(self, texts: list[str]) -> np.ndarray:
            return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    model = Echo(1)
    model.normalize = False
    texts = ["aaa", "a", "aaaaa", "aa"]
    assert model.encode(texts, batch_size=2)[:, 0].tolist() == [3, 1, 5, 2]


def test_listeners_let_go_of_a_model_before_it_is_closed_on_eviction_and_clear() -> None:
    cache = ModelCache(budget_bytes=150_000_000)
    seen: list[tuple[str, bool]] = []

    def listener(key: str, model: EmbeddingModel) -> None:
        assert isinstance(model, SizedModel)
        assert cache.get(key) is None  # already out of the cache, and the cache's lock is free
        seen.append((key, model.closed))

    cache.add_eviction_listener(listener)
    cache.get_or_load("a", lambda: SizedModel(100))
    cache.get_or_load("b", lambda: SizedModel(100))  # evicts a
    cache.clear()  # drops b
    assert seen == [("a", False), ("b", False)]
    assert cache.info().entries == 0

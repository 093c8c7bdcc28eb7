"""An LRU cache of loaded models, bounded by an estimate of their memory."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from rag_factory.models.embedding.backends.base import EmbeddingModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheInfo:
    """Counters of the model cache."""

    hits: int
    misses: int
    evictions: int
    entries: int
    used_bytes: int
    budget_bytes: int


EvictionListener = Callable[[str, EmbeddingModel], None]


class ModelCache:
    """Least-recently-used models are evicted when the memory budget would be exceeded.

    The cache owns the lifetime of the models it holds: whatever else serves a cached model (the
    serving engine's micro-batcher) registers an eviction listener and lets go of the model there.
    A model leaving the cache (evicted or cleared) is handed to every listener, outside the cache's
    lock, and only then closed; listeners finish in-flight work with it before they return.

    A model larger than the whole budget is still served (alone): refusing it would make the
    budget a correctness problem rather than a memory bound.
    """

    def __init__(self, budget_bytes: int) -> None:
        if budget_bytes <= 0:
            raise ValueError("budget_bytes must be positive")
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[str, EmbeddingModel] = OrderedDict()
        self._lock = threading.Lock()
        # One lock per key: two threads asking for the same model load it once.
        self._key_locks: dict[str, threading.Lock] = {}
        self._hits = self._misses = self._evictions = 0
        self._listeners: list[EvictionListener] = []

    def add_eviction_listener(self, listener: EvictionListener) -> None:
        """Call ``listener(key, model)`` when a model leaves the cache, before the model is closed."""
        with self._lock:
            self._listeners.append(listener)

    def get(self, key: str) -> EmbeddingModel | None:
        """The cached model for ``key`` (marked most recently used), or None."""
        with self._lock:
            model = self._entries.get(key)
            if model is not None:
                self._entries.move_to_end(key)
                self._hits += 1
            return model

    def get_or_load(self, key: str, load: Callable[[], EmbeddingModel]) -> EmbeddingModel:
        """Return the cached model, loading it with ``load`` on a miss."""
        cached = self.get(key)
        if cached is not None:
            return cached
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            cached = self.get(key)
            if cached is not None:
                return cached
            model = load()
            with self._lock:
                self._misses += 1
                evicted = self._make_room(model.memory_bytes)
                self._entries[key] = model
            self._release(evicted)
            return model

    def _make_room(self, incoming: int) -> list[tuple[str, EmbeddingModel]]:
        evicted: list[tuple[str, EmbeddingModel]] = []
        used = sum(m.memory_bytes for m in self._entries.values())
        while self._entries and used + incoming > self.budget_bytes:
            key, model = self._entries.popitem(last=False)
            used -= model.memory_bytes
            self._evictions += 1
            logger.info("evicted model %s (%.1f MB) from the cache", key[:80], model.memory_bytes / 1e6)
            evicted.append((key, model))
        return evicted

    def _release(self, removed: list[tuple[str, EmbeddingModel]]) -> None:
        # Outside the lock: a listener may wait for queued work on the model to finish.
        with self._lock:
            listeners = list(self._listeners)
        for key, model in removed:
            for listener in listeners:
                try:
                    listener(key, model)
                except Exception:
                    logger.exception("an eviction listener failed for model %s", key[:80])
            try:
                model.close()
            except Exception:
                logger.exception("closing model %s failed", key[:80])

    def peek(self, key: str) -> EmbeddingModel | None:
        """The cached model for ``key``, or None, without marking it used."""
        with self._lock:
            return self._entries.get(key)

    def snapshot(self) -> tuple[dict[str, EmbeddingModel], CacheInfo]:
        """The cached models by key, and the counters, taken at one instant."""
        with self._lock:
            return dict(self._entries), self._info()

    def clear(self) -> None:
        """Drop every cached model (listeners finish their work with each one first)."""
        with self._lock:
            removed = list(self._entries.items())
            self._entries.clear()
        self._release(removed)

    def info(self) -> CacheInfo:
        """Current counters."""
        with self._lock:
            return self._info()

    def _info(self) -> CacheInfo:
        return CacheInfo(
            hits=self._hits,
            misses=self._misses,
            evictions=self._evictions,
            entries=len(self._entries),
            used_bytes=sum(m.memory_bytes for m in self._entries.values()),
            budget_bytes=self.budget_bytes,
        )

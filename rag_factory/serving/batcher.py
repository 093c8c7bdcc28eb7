"""Micro-batching: concurrent requests for one model share forward passes, through a bounded queue."""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from rag_factory.arrays import VectorArray
from rag_factory.errors import BatcherClosedError, ResourceExhaustedError
from rag_factory.models.embedding.backends.base import EmbeddingModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchOutput:
    """The vectors of one request, and how its batch went."""

    vectors: VectorArray
    queue_ms: float
    inference_ms: float
    batch_texts: int


@dataclass
class _Pending:
    texts: list[str]
    future: Future[BatchOutput]
    enqueued: float


class MicroBatcher:
    """Collects requests for one model for up to ``max_wait_ms`` and runs them as one batch.

    The queue holds at most ``queue_capacity`` requests; past that ``submit`` raises
    ``ResourceExhaustedError`` at once, so overload turns into fast errors, not memory growth.
    ``close`` finishes every request ``submit`` accepted; after it, ``submit`` refuses.

    Args:
        model: The loaded model.
        max_batch_texts: Most texts per forward pass (a single larger request still runs alone).
        max_wait_ms: How long the first request of a batch waits for company; 0 disables waiting.
        queue_capacity: Most queued requests.
    """

    def __init__(self, model: EmbeddingModel, *, max_batch_texts: int, max_wait_ms: float, queue_capacity: int):
        self.model = model
        self.max_batch_texts = max_batch_texts
        self.max_wait_s = max_wait_ms / 1000.0
        self._queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=queue_capacity)
        self._worker = threading.Thread(target=self._run, name=f"batcher-{model.info.source[-40:]}", daemon=True)
        self._closed = False
        # Makes "accepted" and "closed" exclusive: no request slips into the queue behind the stop.
        self._accepting = threading.Lock()
        self._worker.start()

    def depth(self) -> int:
        """Requests waiting now."""
        return self._queue.qsize()

    def submit(self, texts: list[str]) -> Future[BatchOutput]:
        """Queue texts for embedding; the future resolves to their vectors.

        Raises:
            ResourceExhaustedError: The queue is full.
            BatcherClosedError: The batcher is closed.
        """
        pending = _Pending(texts, Future(), time.perf_counter())
        with self._accepting:
            if self._closed:
                raise BatcherClosedError("the server is shutting down; retry on another replica")
            try:
                self._queue.put_nowait(pending)
            except queue.Full:
                raise ResourceExhaustedError(
                    f"the embedding queue is full ({self._queue.maxsize} requests waiting); retry with backoff"
                ) from None
        return pending.future

    @property
    def closed(self) -> bool:
        """Whether the batcher refuses new requests."""
        return self._closed

    def close(self) -> None:
        """Refuse new requests, finish every accepted one, then stop the worker (idempotent)."""
        with self._accepting:
            first = not self._closed
            self._closed = True
        if first:
            self._queue.put(None)  # blocks while the queue is full; the worker is draining it
        self._worker.join(timeout=30)

    def _collect(self, first: _Pending) -> tuple[list[_Pending], bool]:
        batch, count = [first], len(first.texts)
        deadline = first.enqueued + self.max_wait_s
        while count < self.max_batch_texts:
            remaining = deadline - time.perf_counter()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            if count + len(item.texts) > self.max_batch_texts:
                # Too big to join: it starts the next batch instead of being split.
                self._run_batch(batch)
                batch, count = [item], len(item.texts)
                continue
            batch.append(item)
            count += len(item.texts)
        return batch, False

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._collect(first)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        texts = [text for item in batch for text in item.texts]
        try:
            vectors = self.model.encode(texts)
        except Exception as exc:  # handed to each caller, who decides about fallback
            for item in batch:
                item.future.set_exception(exc)
            return
        inference_ms = (time.perf_counter() - started) * 1000.0
        offset = 0
        for item in batch:
            rows = np.ascontiguousarray(vectors[offset : offset + len(item.texts)])
            offset += len(item.texts)
            item.future.set_result(BatchOutput(rows, (started - item.enqueued) * 1000.0, inference_ms, len(texts)))

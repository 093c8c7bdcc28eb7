"""Micro-batching: concurrent requests for one model share forward passes, through a bounded queue."""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from rag_factory.arrays import VectorArray
from rag_factory.errors import BatcherClosedError, DeadlineExceededError, ResourceExhaustedError
from rag_factory.models.embedding.backends.base import EmbeddingModel

logger = logging.getLogger(__name__)

# Weight of the newest forward pass in the running estimate of seconds per text.
_ESTIMATE_WEIGHT = 0.2


@dataclass(frozen=True)
class BatchOutput:
    """The vectors of one request, and how its batch went."""

    vectors: VectorArray
    queue_ms: float
    inference_ms: float
    batch_texts: int


@dataclass(eq=False)
class _Pending:
    texts: list[str]
    future: Future[BatchOutput]
    enqueued: float  # time.monotonic()
    deadline: float  # time.monotonic(); math.inf without one
    queued: bool = True  # still in the queue (guarded by the batcher's lock)


class MicroBatcher:
    """Collects requests for one model for up to ``max_wait_ms`` and runs them as one batch.

    The queue is bounded twice: at most ``queue_capacity`` requests and ``max_queued_texts`` texts
    wait. A request that does not fit raises ``ResourceExhaustedError`` at once, so overload turns
    into fast errors, not memory growth and timeouts. A request alone in an empty queue always fits.

    No batch computes texts that no one waits for: a request whose deadline has passed is dropped
    when it reaches the head of the queue and again just before its batch runs (its future fails
    with ``DeadlineExceededError``), and a caller that leaves cancels its future
    (``future.cancel()``), which takes it out of the queue at once. A forward pass already running is
    never interrupted.

    With ``refuse_late`` a request is also refused at once when the work ahead of it (the rest of the
    running batch and the queued texts) and its own texts would take longer than its deadline allows,
    estimated from the measured seconds per text of recent forward passes (no estimate before the first).

    ``close`` finishes every request ``submit`` accepted; after it, ``submit`` refuses.

    ``on_batch`` hears of each completed forward pass once, with its number of texts, before any of its
    callers gets a result (so metrics count passes, not the requests that shared them).

    Args:
        model: The loaded model.
        max_batch_texts: Most texts per forward pass (a single larger request still runs alone).
        max_wait_ms: How long the first request of a batch waits for company; 0 disables waiting.
        queue_capacity: Most queued requests.
        max_queued_texts: Most queued texts (None: no limit beyond ``queue_capacity``).
        refuse_late: Refuse requests whose deadline falls before the queue ahead of them is done.
        on_batch: Called with the texts of each completed forward pass, from the batcher's thread.
    """

    def __init__(
        self,
        model: EmbeddingModel,
        *,
        max_batch_texts: int,
        max_wait_ms: float,
        queue_capacity: int,
        max_queued_texts: int | None = None,
        refuse_late: bool = False,
        on_batch: Callable[[int], None] | None = None,
    ):
        self.model = model
        self.max_batch_texts = max_batch_texts
        self.max_wait_s = max_wait_ms / 1000.0
        self.queue_capacity = queue_capacity
        self.max_queued_texts = max_queued_texts if max_queued_texts is not None else math.inf
        self.refuse_late = refuse_late
        self.on_batch = on_batch
        self._queue: collections.deque[_Pending] = collections.deque()
        self._queued_texts = 0
        self._seconds_per_text = 0.0  # 0 until the first forward pass has been timed
        self._busy_until = 0.0  # when the running forward pass should end (time.monotonic())
        # Guards the queue, its text count, ``_closed`` and the estimate; makes "accepted" and
        # "closed" exclusive, so no request slips into the queue behind the stop.
        self._lock = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._run, name=f"batcher-{model.info.source[-40:]}", daemon=True)
        self._worker.start()

    def depth(self) -> int:
        """Requests waiting now."""
        with self._lock:
            return len(self._queue)

    def queued_texts(self) -> int:
        """Texts waiting now."""
        with self._lock:
            return self._queued_texts

    def submit(self, texts: list[str], *, deadline: float | None = None) -> Future[BatchOutput]:
        """Queue texts for embedding; the future resolves to their vectors.

        Cancelling the future before its batch starts drops the request from the queue.

        Args:
            texts: The texts of one request.
            deadline: When the caller stops waiting, on the ``time.monotonic()`` clock (None: never).

        Raises:
            ResourceExhaustedError: The queue is full, or (with ``refuse_late``) too long for the deadline.
                Its ``cause`` metadata is ``"queue_full"`` or ``"deadline_too_short"``.
            DeadlineExceededError: The deadline has already passed.
            BatcherClosedError: The batcher is closed.
        """
        now = time.monotonic()
        pending = _Pending(texts, Future(), now, math.inf if deadline is None else deadline)
        if pending.deadline <= now:
            raise DeadlineExceededError("the call's deadline passed before it could be queued; retry with a longer one")
        with self._lock:
            if self._closed:
                raise BatcherClosedError("the server is shutting down; retry on another replica")
            self._check_room(pending, now)
            self._queue.append(pending)
            self._queued_texts += len(texts)
            self._lock.notify()
        pending.future.add_done_callback(lambda _: self._forget(pending))
        return pending.future

    def _check_room(self, pending: _Pending, now: float) -> None:
        """Refuse ``pending`` unless it fits the queue and, with ``refuse_late``, its deadline (under the lock)."""
        if self._queue and (
            len(self._queue) >= self.queue_capacity or self._queued_texts + len(pending.texts) > self.max_queued_texts
        ):
            raise ResourceExhaustedError(
                f"the server is busy: {len(self._queue)} requests with {self._queued_texts} texts are queued "
                f"for this model (limits: {self.queue_capacity} requests, {self.max_queued_texts} texts); "
                "retry with backoff",
                cause="queue_full",
            )
        if not self.refuse_late:
            return
        # The rest of the running batch, the queue, then this request, at the measured seconds per text.
        # Measured on recent batches, which are full under overload: the estimate is close exactly when
        # the queue is long. Nothing ahead, nothing refused: a slow model alone is not "busy".
        ahead_s = max(0.0, self._busy_until - now) + self._queued_texts * self._seconds_per_text
        needed_s = ahead_s + len(pending.texts) * self._seconds_per_text
        if ahead_s > 0 and now + needed_s > pending.deadline:
            raise ResourceExhaustedError(
                f"the server is busy: the work ahead and this request need about {needed_s:.1f} s, more than "
                f"the {pending.deadline - now:.1f} s left before this call's deadline; retry with backoff or a "
                "longer deadline",
                cause="deadline_too_short",
            )

    def _forget(self, pending: _Pending) -> None:
        """A future is done: if it was cancelled while queued, its texts leave the queue now."""
        with self._lock:
            if pending.queued:
                self._queue.remove(pending)
                self._queued_texts -= len(pending.texts)
                pending.queued = False

    @property
    def closed(self) -> bool:
        """Whether the batcher refuses new requests."""
        return self._closed

    def close(self) -> None:
        """Refuse new requests, finish every accepted one, then stop the worker (idempotent)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._worker.join(timeout=30)

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run_batch(batch)

    def _next_batch(self) -> list[_Pending] | None:
        """Wait for work, then take requests for one batch (None: closed and nothing left)."""
        batch: list[_Pending] = []
        expired: list[_Pending] = []
        count = 0
        window_end = math.inf
        with self._lock:
            while count < self.max_batch_texts:
                now = time.monotonic()
                if self._queue:
                    head = self._queue[0]
                    if batch and count + len(head.texts) > self.max_batch_texts:
                        break  # too big to join: it starts the next batch instead of being split
                    self._pop_head()
                    if head.deadline <= now:
                        expired.append(head)
                        continue
                    if not batch:
                        window_end = head.enqueued + self.max_wait_s
                    batch.append(head)
                    count += len(head.texts)
                elif batch and not self._closed and window_end > now:
                    self._lock.wait(window_end - now)  # company for the batch
                elif batch or expired or self._closed:
                    break  # expired requests are settled now, not when the next request arrives
                else:
                    self._lock.wait()
        # Outside the lock: failing a future runs its callbacks, and ``_forget`` takes the lock.
        for item in expired:
            _fail_expired(item)
        return batch if batch or not self._closed else None

    def _pop_head(self) -> None:
        head = self._queue.popleft()
        self._queued_texts -= len(head.texts)
        head.queued = False

    def _run_batch(self, batch: list[_Pending]) -> None:
        # Last check before compute: skip callers that left or ran out of time during the wait.
        # After ``set_running_or_notify_cancel`` a caller can no longer cancel.
        now = time.monotonic()
        live = [item for item in batch if _start(item, now)]
        if not live:
            return
        texts = [text for item in live for text in item.texts]
        with self._lock:
            started = time.monotonic()
            self._busy_until = started + len(texts) * self._seconds_per_text
        try:
            vectors = self.model.encode(texts)
        except Exception as exc:  # handed to each caller, who decides about fallback
            for item in live:
                item.future.set_exception(exc)
            return
        elapsed = time.monotonic() - started
        self._learn(elapsed / len(texts))
        self._report(len(texts))
        offset = 0
        for item in live:
            rows = np.ascontiguousarray(vectors[offset : offset + len(item.texts)])
            offset += len(item.texts)
            item.future.set_result(BatchOutput(rows, (started - item.enqueued) * 1000.0, elapsed * 1000.0, len(texts)))

    def _report(self, texts: int) -> None:
        if self.on_batch is None:
            return
        try:
            self.on_batch(texts)
        except Exception:  # an observer must not stop the batcher's thread
            logger.exception("a batch observer failed")

    def _learn(self, seconds_per_text: float) -> None:
        with self._lock:
            if self._seconds_per_text == 0.0:
                self._seconds_per_text = seconds_per_text
            else:
                self._seconds_per_text += _ESTIMATE_WEIGHT * (seconds_per_text - self._seconds_per_text)


def _start(item: _Pending, now: float) -> bool:
    """Mark ``item`` running; False (and its future settled) when it was cancelled or has expired."""
    if item.deadline <= now:
        _fail_expired(item)
        return False
    return item.future.set_running_or_notify_cancel()


def _fail_expired(item: _Pending) -> None:
    if item.future.set_running_or_notify_cancel():  # False: the caller cancelled it already
        item.future.set_exception(
            DeadlineExceededError(
                "the call's deadline passed while it waited in the busy queue; it was not computed. "
                "Retry with backoff or a longer deadline"
            )
        )

"""Streams cannot starve the server: a cap on open streams, idle timeouts, and a longest lifetime.

Every streaming call holds one of the server's worker threads while it is open. Sixteen idle
``EmbedStream`` calls once held all sixteen and took every RPC down, health included (issue 18, item 4).
This interceptor admits at most ``max_streams`` streaming calls at once (the rest answer
RESOURCE_EXHAUSTED at once), ends a client stream that sends nothing for ``idle_timeout_s``
(DEADLINE_EXCEEDED), and cancels any stream still open after ``max_duration_s``. Unary calls are bounded
by gRPC's own ``maximum_concurrent_rpcs`` (see ``sidecar/server.py``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from rag_factory.errors import DeadlineExceededError

_END = object()
# How often a reader blocked on a full queue checks whether its call ended.
_PUT_POLL_S = 0.5


class _StreamSlots:
    """A counter of open streams with a hard cap (never blocks: a full server refuses at once)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self._open >= self._limit:
                return False
            self._open += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._open -= 1

    @property
    def open(self) -> int:
        with self._lock:
            return self._open


class _Once:
    """Calls ``action`` the first time it is called, and never again."""

    def __init__(self, action: Callable[[], object]) -> None:
        self._action: Callable[[], object] | None = action
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            action, self._action = self._action, None
        if action is not None:
            action()


class _IdleLimitedRequests:
    """Requests of a client stream, ending with DeadlineExceededError when none comes for ``timeout_s``.

    gRPC's request iterator blocks without a timeout, so a daemon thread reads it into a one-slot queue and
    the servicer waits on the queue instead. When the call ends, :meth:`close` is called: a reader blocked
    on gRPC's iterator sees it raise, and one blocked on a full queue (the servicer stopped reading after
    a failed message) sees the close within ``_PUT_POLL_S``; either way the thread exits.
    """

    def __init__(self, requests: Iterator[Any], timeout_s: float) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._timeout_s = timeout_s
        self._closed = threading.Event()
        threading.Thread(target=self._read, args=(requests,), name="stream-reader", daemon=True).start()

    def close(self) -> None:
        """The call ended: stop reading."""
        self._closed.set()

    def _read(self, requests: Iterator[Any]) -> None:
        try:
            for request in requests:
                if not self._put(request):
                    return
        except Exception:  # the call ended (cancelled, aborted or failed): nothing left to read
            pass
        self._put(_END)

    def _put(self, item: Any) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=_PUT_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            request = self._queue.get(timeout=self._timeout_s)
        except queue.Empty:
            raise DeadlineExceededError(
                f"the stream sent no message for {self._timeout_s:g} s; the server closed it"
            ) from None
        if request is _END:
            raise StopIteration
        return request


class StreamAdmission(grpc.ServerInterceptor):
    """Admit streaming calls up to a cap; bound how long they idle and live.

    Args:
        max_streams: Streaming calls open at once; keep it below the worker threads so that unary calls
            (health included) always find one.
        idle_timeout_s: A client stream that sends nothing for this long is ended.
        max_duration_s: A stream still open after this long is cancelled (watchers reconnect).
    """

    def __init__(self, max_streams: int, idle_timeout_s: float, max_duration_s: float) -> None:
        self._slots = _StreamSlots(max_streams)
        self._max_streams = max_streams
        self._idle_timeout_s = idle_timeout_s
        self._max_duration_s = max_duration_s

    @property
    def open_streams(self) -> int:
        """Streaming calls open now."""
        return self._slots.open

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or not (handler.request_streaming or handler.response_streaming):
            return handler
        if handler.request_streaming and handler.response_streaming:
            return handler._replace(stream_stream=self._admit_stream(handler.stream_stream, True))  # type: ignore[attr-defined, no-any-return]
        if handler.request_streaming:
            return handler._replace(stream_unary=self._admit_stream(handler.stream_unary, True))  # type: ignore[attr-defined, no-any-return]
        return handler._replace(unary_stream=self._admit_stream(handler.unary_stream, False))  # type: ignore[attr-defined, no-any-return]

    def _admit_stream(
        self, behavior: Callable[[Any, grpc.ServicerContext], Any], request_streaming: bool
    ) -> Callable[[Any, grpc.ServicerContext], Any]:
        def admitted(request: Any, context: grpc.ServicerContext) -> Any:
            if not self._slots.try_acquire():
                context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the server has {self._max_streams} streams open, its limit; retry later",
                )
            # A stream still open after max_duration_s is cancelled; its servicer sees is_active() turn
            # False (or its request iterator end) and returns, freeing the thread.
            lifetime = threading.Timer(self._max_duration_s, context.cancel)
            lifetime.daemon = True
            reader = _IdleLimitedRequests(request, self._idle_timeout_s) if request_streaming else None

            def give_back() -> None:
                lifetime.cancel()
                if reader is not None:
                    reader.close()
                self._slots.release()

            done = _Once(give_back)
            # gRPC stops pulling responses from a cancelled call, so the slot is given back when the call
            # terminates, not when the servicer's generator happens to finish.
            if not context.add_callback(done):
                done()
                context.abort(grpc.StatusCode.CANCELLED, "the call ended before it started")
            lifetime.start()
            try:
                return behavior(reader if reader is not None else request, context)
            except BaseException:
                done()
                raise

        return admitted

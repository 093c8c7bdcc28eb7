"""The embedding engine: resolve and route a request, micro-batch it, fall back, observe it."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import pluggy
from pydantic import BaseModel, ConfigDict, Field

from rag_factory.arrays import VectorArray
from rag_factory.errors import (
    BatcherClosedError,
    DeadlineExceededError,
    FailedPreconditionError,
    FallbackRefusedError,
    InvalidArgumentError,
    ModelLoadError,
    NotFoundError,
    RagFactoryError,
    ResourceExhaustedError,
    UnavailableError,
)
from rag_factory.hooks.events import EmbeddingEvent
from rag_factory.hooks.manager import notify_safely
from rag_factory.models.embedding.backends.base import EmbeddingModel
from rag_factory.models.embedding.cache import CacheInfo
from rag_factory.models.embedding.loader import CustomModelLoader
from rag_factory.models.embedding.pooling import l2_normalize
from rag_factory.models.embedding.records import ModelRecord
from rag_factory.models.embedding.registry import ModelRegistry
from rag_factory.models.embedding.registry_loading import model_config_for
from rag_factory.models.monitoring.prometheus import LoadedModel, ServingMetrics
from rag_factory.serving.batcher import BatchOutput, MicroBatcher
from rag_factory.serving.limits import RequestLimits, check_texts
from rag_factory.serving.request_log import RequestLogEntry, log_request

logger = logging.getLogger(__name__)

Readiness = Literal["not_loaded", "loading", "ready", "failed"]
# Errors that are the caller's to fix: never hidden behind a fallback.
_CLIENT_ERRORS = (InvalidArgumentError, NotFoundError, FailedPreconditionError, ResourceExhaustedError)


class BatchingConfig(BaseModel):
    """Micro-batching settings."""

    # A misspelt key in the sidecar's YAML must fail at start, not be ignored.
    model_config = ConfigDict(extra="forbid")

    max_batch_texts: int = Field(default=64, gt=0, description="Most texts per forward pass.")
    max_wait_ms: float = Field(default=2.0, ge=0, description="How long a batch waits for more requests.")
    queue_capacity: int = Field(default=256, gt=0, description="Most queued requests per model.")


@dataclass(frozen=True)
class EmbedCall:
    """One embedding request, independent of the transport."""

    texts: list[str]
    model: str = ""
    routing_key: str = ""
    domain: str = ""
    request_id: str = ""
    timeout_s: float | None = None
    # The default model's vectors are of another vector space, so it answers for a failed model only
    # when the caller says it can use them (it searches the index that ``served_by`` names).
    allow_fallback: bool = False
    # Matryoshka: keep the first ``dimensions`` values of each vector, scaled back to unit length.
    dimensions: int | None = None


class Cancellation:
    """A caller's way to say that it left: its queued work is dropped, never computed.

    A transport creates one per call (or stream) and calls :meth:`cancel` when the client goes away;
    a gRPC servicer registers it with ``context.add_callback(cancellation.cancel)``, which gRPC also
    calls after a normal end (harmless then). Thread-safe; ``cancel`` is idempotent.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._futures: set[concurrent.futures.Future[BatchOutput]] = set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled

    def cancel(self) -> None:
        """Drop the caller's queued work; a forward pass already running finishes, unused."""
        with self._lock:
            self._cancelled = True
            futures = list(self._futures)
        for future in futures:
            future.cancel()  # False once its batch runs: a forward pass is not interrupted

    @contextmanager
    def watching(self, future: concurrent.futures.Future[BatchOutput]) -> Iterator[None]:
        """Cancel ``future`` if the caller leaves while inside this block (at once if it has left)."""
        with self._lock:
            self._futures.add(future)
            cancelled = self._cancelled
        if cancelled:
            future.cancel()
        try:
            yield
        finally:
            with self._lock:
                self._futures.discard(future)


@dataclass(frozen=True)
class Route:
    """Where a router sends a request."""

    model: str
    variant: str = ""  # "control", "candidate", or "" without an experiment
    experiment: str = ""


class Router(Protocol):
    """Maps a requested reference (and routing key) to the model that serves it; A/B plugs in here."""

    def route(self, model: str, routing_key: str) -> Route:
        """Pick the model for one request."""


class DirectRouter:
    """No experiments: every reference serves itself."""

    def route(self, model: str, routing_key: str) -> Route:
        return Route(model)


@dataclass(frozen=True)
class ServedBy:
    """Which model answered, and how."""

    model_id: str
    model_name: str
    version: str
    backend: str
    precision: str
    requested_model: str
    variant: str = ""
    experiment: str = ""
    fallback: bool = False
    fallback_reason: str = ""


@dataclass(frozen=True)
class EmbedOutcome:
    """Vectors of an ``EmbedCall`` with their provenance and timings."""

    vectors: VectorArray
    served_by: ServedBy
    request_id: str
    queue_ms: float
    inference_ms: float
    total_ms: float
    batch_texts: int


@dataclass(frozen=True)
class _Run:
    """One call on its way through the engine, with its absolute deadline (``time.monotonic()``)."""

    call: EmbedCall
    deadline: float | None
    cancellation: Cancellation | None


@dataclass
class _Reached:
    """How far a call got: the route and the model it was last sent to, which label its failure."""

    route: Route | None = None
    record: ModelRecord | None = None  # None: the reference did not resolve (no model label)
    fallback: bool = False


# After a failed load, requests fail (or go straight to the fallback) for this long before a retry.
LOAD_RETRY_AFTER_S = 30.0
# How often a request looks its model up again when the model is evicted under it (cache thrashing).
_EVICTED_RETRIES = 3


@dataclass
class _ModelSlot:
    """Per model id bookkeeping; it never holds the model (the loader's cache does)."""

    state: Readiness = "not_loaded"  # "ready" holds only while the cache holds ``cache_key``
    message: str = ""
    failed_at: float = 0.0
    cache_key: str = ""  # the loader-cache key of the model this id last loaded
    record: ModelRecord | None = None  # the record it was loaded for (labels of rag_factory_model_info)
    lock: threading.Lock = field(default_factory=threading.Lock)


class EmbeddingEngine:
    """Serves embedding requests for registered models.

    The loader's cache owns every loaded model and its memory budget: the engine serves a model
    through a micro-batcher only while the cache holds it. When the cache evicts a model, the
    engine's batcher for it finishes its queued requests and stops before the model is closed, and
    a later request loads the model again. Model ids whose loading options are equal share one
    cached model and one batcher.

    Args:
        registry: Where model references resolve.
        loader: Loads (and caches) models.
        default_model: Reference served when a request names none; also the fallback model.
        limits: Request limits.
        batching: Micro-batching settings.
        hooks: Plugin manager for preprocessing and observer hooks (None: no hooks).
        metrics: Prometheus metrics (None: a private registry).
        router: A/B router (None: direct).
        request_log: Write one JSON line per request to the ``rag_factory.requests`` logger.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        loader: CustomModelLoader,
        *,
        default_model: str,
        limits: RequestLimits | None = None,
        batching: BatchingConfig | None = None,
        hooks: pluggy.PluginManager | None = None,
        metrics: ServingMetrics | None = None,
        router: Router | None = None,
        request_log: bool = False,
    ) -> None:
        self.registry = registry
        self.loader = loader
        self.default_model = default_model
        self.limits = limits or RequestLimits()
        self.batching = batching or BatchingConfig()
        self.hooks = hooks
        self.metrics = metrics or ServingMetrics()
        self.router: Router = router or DirectRouter()
        self.request_log = request_log
        self._slots: dict[str, _ModelSlot] = {}
        self._slots_lock = threading.Lock()
        # One batcher per cached model object, created on its first request, closed on its eviction.
        self._batchers: dict[int, MicroBatcher] = {}
        self._batchers_lock = threading.Lock()
        self._closed = False
        self._listeners: list[Callable[[EmbedOutcome, EmbedCall], None]] = []
        self._failure_listeners: list[Callable[[Route, EmbedCall], None]] = []
        loader.add_eviction_listener(self._on_evicted)
        self.metrics.watch_models(self._loaded_models)

    # -- requests ---------------------------------------------------------------------------------

    def embed(self, call: EmbedCall, *, cancellation: Cancellation | None = None) -> EmbedOutcome:
        """Embed the texts of one call.

        Work whose deadline (``call.timeout_s`` from now) passes, or whose caller cancels through
        ``cancellation``, is dropped from the model's queue and never computed.

        Args:
            call: The request.
            cancellation: Lets the transport say that the caller left (None: it cannot).

        Raises:
            InvalidArgumentError: The texts break a limit.
            ModelNotFoundError, AliasNotFoundError: The reference does not resolve.
            ModelDeprecatedError: The version is deprecated.
            ResourceExhaustedError: The model's queue is full, or too long for the call's deadline.
            DeadlineExceededError: The call's deadline passed, or its caller cancelled it.
            FallbackRefusedError: The routed model failed and the call did not allow a fallback.
            ModelLoadError: Neither the routed nor the fallback model could serve.
        """
        started = time.perf_counter()
        reached = _Reached()
        try:
            outcome = self._embed(call, cancellation, started, reached)
        except Exception as exc:  # counted here, in the engine, so gRPC and HTTP calls count alike
            # What sidecar/errors.py sends: our errors' reasons, INTERNAL for anything else.
            reason = exc.reason if isinstance(exc, RagFactoryError) else "INTERNAL"
            self._account_failure(call, reached, reason, started)
            raise
        self._account(outcome, call)
        return outcome

    def _embed(
        self, call: EmbedCall, cancellation: Cancellation | None, started: float, reached: _Reached
    ) -> EmbedOutcome:
        """``embed``'s work; ``reached`` notes how far the call got, to label a failure."""
        deadline = None if call.timeout_s is None else time.monotonic() + call.timeout_s
        self._check_still_wanted(call, cancellation)
        check_texts(call.texts, self.limits)
        requested = call.model or self.default_model
        route = reached.route = self.router.route(requested, call.routing_key)
        record = reached.record = self.registry.resolve(route.model)
        # Refused before any compute: the record knows its dimension.
        check_dimensions(call.dimensions, record.metadata.embedding_dim, record.model_id)
        run = _Run(call, deadline, cancellation)
        try:
            model, output = self._run(record, run)
            served = self._served_by(record, model, call, route)
        except _CLIENT_ERRORS + (DeadlineExceededError, BatcherClosedError):
            raise
        except Exception as exc:
            fallback = self.registry.resolve(self.default_model)
            reason = f"{type(exc).__name__}: {exc}"[:300]
            if fallback.model_id == record.model_id or not call.allow_fallback:
                self._failed(record, route, call)
                if fallback.model_id == record.model_id:
                    raise _as_load_error(exc, record) from exc
                raise _refused(call, route, record, fallback, reason) from exc
            logger.warning("model %s failed (%s); serving %s instead", record.model_id, reason, fallback.model_id)
            # Labels name models by registered id: the requested reference is the client's text.
            self.metrics.fallbacks.labels(record.model_id, fallback.model_id, _as_load_error(exc, record).reason).inc()
            reached.record, reached.fallback = fallback, True
            model, output = self._run(fallback, run)
            served = self._served_by(fallback, model, call, route, fallback_reason=reason)
        outcome = EmbedOutcome(
            vectors=truncated(output.vectors, call.dimensions, served.model_id),
            served_by=served,
            request_id=call.request_id or uuid.uuid4().hex,
            queue_ms=output.queue_ms,
            inference_ms=output.inference_ms,
            total_ms=(time.perf_counter() - started) * 1000.0,
            batch_texts=output.batch_texts,
        )
        self._observe(outcome, call)
        return outcome

    def _account(self, outcome: EmbedOutcome, call: EmbedCall) -> None:
        """Count a served call, and log it when the request log is on."""
        served = outcome.served_by
        self.metrics.requests.labels(served.model_id, served.version, served.variant, "ok", "").inc()
        if self.request_log:
            log_request(
                RequestLogEntry(
                    request_id=outcome.request_id,
                    requested_model=call.model,
                    model_id=served.model_id,
                    version=served.version,
                    variant=served.variant,
                    experiment=served.experiment,
                    fallback=served.fallback,
                    texts=len(call.texts),
                    chars=_chars(call.texts),
                    status="ok",
                    reason="",
                    queue_ms=outcome.queue_ms,
                    inference_ms=outcome.inference_ms,
                    total_ms=outcome.total_ms,
                )
            )

    def refused(self, reason: str, call: EmbedCall) -> None:
        """Count and log a request that its transport refused before the engine saw it.

        A transport checks a request (its JSON, fields, size, the server's capacity) before it becomes a
        call the engine runs; those failures are counted and logged here as the engine's own are, with
        empty model labels (no model was chosen). Not for refused credentials: those ask for nothing.

        Args:
            reason: The ErrorInfo reason its client gets (``INVALID_ARGUMENT``, ``INVALID_JSON``, ...).
            call: What is known of the request: its id, reference and texts (none when unreadable).
        """
        self._account_failure(call, _Reached(), reason, time.perf_counter())

    def _account_failure(self, call: EmbedCall, reached: _Reached, reason: str, started: float) -> None:
        """Count a failed call by the ErrorInfo reason its client gets, and log it when the request log is on."""
        record, route = reached.record, reached.route
        model_id, version = (record.model_id, record.metadata.version) if record is not None else ("", "")
        variant = route.variant if route is not None else ""
        self.metrics.requests.labels(model_id, version, variant, "error", reason).inc()
        if self.request_log:
            log_request(
                RequestLogEntry(
                    request_id=call.request_id,
                    requested_model=call.model,
                    model_id=model_id,
                    version=version,
                    variant=variant,
                    experiment=route.experiment if route is not None else "",
                    fallback=reached.fallback,
                    texts=len(call.texts),
                    chars=_chars(call.texts),
                    status="error",
                    reason=reason,
                    queue_ms=None,
                    inference_ms=None,
                    total_ms=(time.perf_counter() - started) * 1000.0,
                )
            )

    def _check_still_wanted(self, call: EmbedCall, cancellation: Cancellation | None) -> None:
        """Refuse a call whose client has given up before the server could start it.

        A call waits for a server thread (behind other calls) before it gets here; by then its
        deadline may have passed. (No model label: nothing is resolved for a call that is not served.)
        """
        if call.timeout_s is not None and call.timeout_s <= 0:
            self.metrics.shed.labels("", "expired").inc()
            raise DeadlineExceededError("the call's deadline passed before the server could start it; retry")
        if cancellation is not None and cancellation.cancelled:
            self.metrics.shed.labels("", "cancelled").inc()
            raise DeadlineExceededError("the call was cancelled by its client before it was computed")

    def add_listener(self, listener: Callable[[EmbedOutcome, EmbedCall], None]) -> None:
        """Call ``listener`` after every served request (the A/B layer records latency this way)."""
        self._listeners.append(listener)

    def add_failure_listener(self, listener: Callable[[Route, EmbedCall], None]) -> None:
        """Call ``listener`` when the routed model fails and no fallback answers (A/B counts arm errors)."""
        self._failure_listeners.append(listener)

    def _failed(self, record: ModelRecord, route: Route, call: EmbedCall) -> None:
        for listener in self._failure_listeners:
            try:
                listener(route, call)
            except Exception:
                logger.exception("an embedding failure listener failed")

    def _run(self, record: ModelRecord, run: _Run) -> tuple[EmbeddingModel, BatchOutput]:
        batcher = self._batcher(record)
        texts = self._preprocess(run.call, record.model_id)
        batcher, future = self._submit(record, batcher, texts, run.deadline)
        output = self._wait(record, future, run)
        return batcher.model, output

    def _submit(
        self, record: ModelRecord, batcher: MicroBatcher, texts: list[str], deadline: float | None
    ) -> tuple[MicroBatcher, concurrent.futures.Future[BatchOutput]]:
        """Queue ``texts`` on ``record``'s batcher, or refuse at once (full queue, passed deadline)."""
        for _ in range(_EVICTED_RETRIES):
            try:
                return batcher, batcher.submit(texts, deadline=deadline)
            except BatcherClosedError:
                if self._closed:
                    raise
                # Evicted between the lookup and the submit: look it up (and load it) again.
                batcher = self._batcher(record)
            except ResourceExhaustedError as exc:
                self.metrics.shed.labels(record.model_id, exc.metadata.get("cause", "queue_full")).inc()
                raise
            except DeadlineExceededError:  # loading the model took the time that was left
                self.metrics.shed.labels(record.model_id, "expired").inc()
                raise
        raise UnavailableError(
            f"model {record.model_id!r} keeps being evicted from the model cache; retry, "
            "or raise the cache's memory budget"
        )

    def _wait(self, record: ModelRecord, future: concurrent.futures.Future[BatchOutput], run: _Run) -> BatchOutput:
        """The batch output of ``future``; a caller that times out or leaves takes its work off the queue."""
        timeout = None if run.deadline is None else max(0.0, run.deadline - time.monotonic())
        try:
            if run.cancellation is None:
                return future.result(timeout=timeout)
            with run.cancellation.watching(future):
                return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            # Not computed if no batch has taken it yet; a forward pass already running is not interrupted.
            dropped = future.cancel()
            self.metrics.shed.labels(record.model_id, "expired" if dropped else "late").inc()
            raise DeadlineExceededError(
                f"the deadline passed while {record.model_id!r} was busy; retry with backoff or a longer deadline"
            ) from None
        except DeadlineExceededError:  # the batcher dropped it, expired, before computing it
            self.metrics.shed.labels(record.model_id, "expired").inc()
            raise
        except concurrent.futures.CancelledError:
            self.metrics.shed.labels(record.model_id, "cancelled").inc()
            raise DeadlineExceededError("the call was cancelled by its client before it was computed") from None

    def _preprocess(self, call: EmbedCall, model_id: str) -> list[str]:
        if self.hooks is None:
            return call.texts
        result = self.hooks.hook.rag_factory_preprocess_texts(texts=call.texts, domain=call.domain, model_id=model_id)
        if result is None:
            return call.texts
        if len(result) != len(call.texts):
            raise RagFactoryError(f"a preprocessing plugin returned {len(result)} texts for {len(call.texts)}")
        return list(result)

    def _served_by(
        self, record: ModelRecord, model: EmbeddingModel, call: EmbedCall, route: Route, fallback_reason: str = ""
    ) -> ServedBy:
        return ServedBy(
            model_id=record.model_id,
            model_name=record.metadata.model_name,
            version=record.metadata.version,
            backend=model.info.backend,
            precision=model.info.precision,
            requested_model=call.model,
            variant=route.variant,
            experiment=route.experiment,
            fallback=bool(fallback_reason),
            fallback_reason=fallback_reason,
        )

    def _observe(self, outcome: EmbedOutcome, call: EmbedCall) -> None:
        served = outcome.served_by
        self.metrics.texts.labels(served.model_id, served.version).inc(len(call.texts))
        self.metrics.latency.labels(served.model_id, served.version, served.variant).observe(outcome.total_ms / 1e3)
        for listener in self._listeners:
            try:
                listener(outcome, call)
            except Exception:
                logger.exception("an embedding listener failed")
        if self.hooks is not None:
            event = EmbeddingEvent(
                side="sidecar",
                model_id=served.model_id,
                version=served.version,
                variant=served.variant,
                latency_ms=outcome.total_ms,
                count=len(call.texts),
                request_id=outcome.request_id,
                experiment=served.experiment,
                fallback=served.fallback,
                requested_model=served.requested_model,
            )
            notify_safely(self.hooks.hook.rag_factory_on_embedding, event=event)

    # -- models -----------------------------------------------------------------------------------

    def _slot(self, model_id: str) -> _ModelSlot:
        with self._slots_lock:
            return self._slots.setdefault(model_id, _ModelSlot())

    def _batcher(self, record: ModelRecord) -> MicroBatcher:
        """The batcher of ``record``'s cached model, loading the model on a cache miss."""
        slot = self._slot(record.model_id)
        batcher = self._cached_batcher(slot.cache_key)
        if batcher is not None:
            return batcher
        with slot.lock:
            for _ in range(_EVICTED_RETRIES):
                batcher = self._cached_batcher(slot.cache_key)
                if batcher is not None:
                    return batcher
                if self._closed:
                    raise BatcherClosedError("the server is shutting down; retry on another replica")
                if slot.state == "failed" and time.monotonic() - slot.failed_at < LOAD_RETRY_AFTER_S:
                    raise ModelLoadError(f"model {record.model_id!r} failed to load recently: {slot.message}")
                slot.state, slot.message = "loading", ""
                try:
                    key = self.loader.cache_key(model_config_for(self.registry, record))
                    _, model = self.registry.load_model(record.model_id, self.loader)
                except Exception as exc:
                    slot.state, slot.message = "failed", f"{type(exc).__name__}: {exc}"[:300]
                    slot.failed_at = time.monotonic()
                    raise
                slot.cache_key, slot.state, slot.record = key, "ready", record
                batcher = self._attach(key, model, record.model_id)
                if batcher is not None:
                    return batcher
                # Evicted by a concurrent load before it could be served: load it again.
            raise UnavailableError(
                f"model {record.model_id!r} keeps being evicted from the model cache; retry, "
                "or raise the cache's memory budget"
            )

    def _cached_batcher(self, key: str) -> MicroBatcher | None:
        """The batcher of the model cached under ``key`` (a use, for the cache's LRU order), if any."""
        model = self.loader.cached_model(key) if key else None
        if model is None:
            return None
        with self._batchers_lock:
            return self._batchers.get(id(model))

    def _attach(self, key: str, model: EmbeddingModel, model_id: str) -> MicroBatcher | None:
        """The batcher of ``model``, created if needed; None once the cache no longer holds it.

        Its forward passes are counted under ``model_id``, the id that loaded the model (ids whose loading
        options are equal share the model, its batcher and so its batches).
        """
        with self._batchers_lock:
            if self._closed:
                raise BatcherClosedError("the server is shutting down; retry on another replica")
            # Checked under the lock the eviction listener takes: an eviction after this check
            # finds the new batcher and closes it.
            if self.loader.cache_snapshot()[0].get(key) is not model:
                return None
            batcher = self._batchers.get(id(model))
            if batcher is None:
                batcher = MicroBatcher(
                    model,
                    max_batch_texts=self.batching.max_batch_texts,
                    max_wait_ms=self.batching.max_wait_ms,
                    queue_capacity=self.batching.queue_capacity,
                    max_queued_texts=self.limits.max_queued_texts,
                    refuse_late=self.limits.refuse_late_requests,
                    on_batch=self.metrics.batch_texts.labels(model_id).observe,
                )
                self._batchers[id(model)] = batcher
            return batcher

    def _on_evicted(self, key: str, model: EmbeddingModel) -> None:
        """The cache let go of ``model``: finish its queued requests and stop its batcher."""
        with self._batchers_lock:
            batcher = self._batchers.pop(id(model), None)
        if batcher is not None:
            batcher.close()

    def _loaded_models(self) -> list[LoadedModel]:
        """The models the cache holds now, with their queue depths (Prometheus reads them at each scrape)."""
        cached, _ = self.loader.cache_snapshot()  # a snapshot leaves the cache's LRU order alone
        with self._slots_lock:
            slots = [(model_id, slot.cache_key, slot.record) for model_id, slot in self._slots.items()]
        with self._batchers_lock:
            batchers = dict(self._batchers)
        loaded: list[LoadedModel] = []
        for model_id, key, record in slots:
            model = cached.get(key)
            if model is None or record is None:
                continue
            batcher = batchers.get(id(model))
            metadata = record.metadata
            loaded.append(
                LoadedModel(
                    model_id=model_id,
                    model_name=metadata.model_name,
                    version=metadata.version,
                    format=metadata.format.value,
                    backend=model.info.backend,
                    precision=model.info.precision,
                    dimension=model.embedding_dim,
                    queue_depth=batcher.depth() if batcher is not None else 0,
                )
            )
        return loaded

    def load(self, ref: str = "") -> tuple[ModelRecord, EmbeddingModel]:
        """Resolve and load a model (the default when ``ref`` is empty) so it is ready to serve."""
        record = self.registry.resolve(ref or self.default_model)
        return record, self._batcher(record).model

    def readiness(self, ref: str = "", *, load: bool = False) -> tuple[ModelRecord, Readiness, str]:
        """A model's loading state; ``load=True`` loads it first (failures are reported, not raised)."""
        record = self.registry.resolve(ref or self.default_model, allow_deprecated=True)
        if load and not record.deprecated:
            try:
                self._batcher(record)
            except RagFactoryError:
                pass
            except Exception:
                logger.exception("loading %s failed", record.model_id)
        slot = self._slot(record.model_id)
        state, message = slot.state, slot.message
        if state == "ready" and self.loader.cache_snapshot()[0].get(slot.cache_key) is None:
            state = "not_loaded"  # evicted from the cache since
        return record, state, message

    def loaded(self) -> list[tuple[str, EmbeddingModel]]:
        """Model ids whose model the loader's cache holds now, and their models."""
        return self.loaded_snapshot()[0]

    def loaded_snapshot(self) -> tuple[list[tuple[str, EmbeddingModel]], CacheInfo]:
        """``loaded()`` with the cache's counters, both from one instant of the cache."""
        cached, info = self.loader.cache_snapshot()
        with self._slots_lock:
            keys = [(mid, slot.cache_key) for mid, slot in self._slots.items()]
        return [(mid, cached[key]) for mid, key in keys if key in cached], info

    def close(self) -> None:
        """Finish queued work and stop every batcher; later requests are refused."""
        with self._batchers_lock:
            self._closed = True
            batchers = list(self._batchers.values())
            self._batchers.clear()
        for batcher in batchers:
            batcher.close()


def check_dimensions(dimensions: int | None, model_dimension: int, model_id: str) -> None:
    """Refuse a Matryoshka dimension below 1 or above the model's own.

    Raises:
        InvalidArgumentError: ``dimensions`` is out of range for the model.
    """
    if dimensions is None:
        return
    if dimensions < 1 or dimensions > model_dimension:
        raise InvalidArgumentError(
            f"dimensions {dimensions} is out of range: model {model_id!r} gives vectors of {model_dimension} "
            f"dimensions; ask for 1 to {model_dimension}, or leave dimensions unset for all of them"
        )


def truncated(vectors: VectorArray, dimensions: int | None, model_id: str) -> VectorArray:
    """The first ``dimensions`` values of each vector, scaled back to unit length (all when None).

    Re-normalised because cosine and dot-product search assume unit vectors, and a prefix of a unit
    vector is shorter than 1 (what OpenAI's and TEI's ``dimensions`` return too).
    """
    if dimensions is None or dimensions == vectors.shape[1]:
        return vectors
    # A fallback model may be narrower than the one the request was checked against.
    check_dimensions(dimensions, vectors.shape[1], model_id)
    return l2_normalize(np.ascontiguousarray(vectors[:, :dimensions]))


def _chars(texts: list[str]) -> int:
    # Guarded: a failed call's texts may be what made it fail (a non-string item).
    return sum(len(text) for text in texts if isinstance(text, str))


def _refused(
    call: EmbedCall, route: Route, record: ModelRecord, fallback: ModelRecord, reason: str
) -> FallbackRefusedError:
    arm = f"A/B {route.variant} arm " if route.variant else ""
    requested = f"{call.model or record.ref!r} ({arm}{record.model_id}, {record.ref})"
    return FallbackRefusedError(
        f"model {requested} failed: {reason}; the default model {fallback.model_id!r} ({fallback.ref}) could "
        "answer, but its vectors are of another vector space. Retry after "
        f"{LOAD_RETRY_AFTER_S:.0f} s, fix or replace {record.model_id!r}, or set allow_fallback and search "
        "the index of the model that served_by names",
        requested_model=call.model,
        model_id=record.model_id,
        fallback_model_id=fallback.model_id,
    )


def _as_load_error(exc: Exception, record: ModelRecord) -> RagFactoryError:
    if isinstance(exc, RagFactoryError):
        return exc
    return ModelLoadError(f"model {record.model_id!r} ({record.ref}) failed: {type(exc).__name__}: {exc}")

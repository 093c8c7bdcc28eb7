"""The embedding engine: resolve and route a request, micro-batch it, fall back, observe it."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import pluggy
from pydantic import BaseModel, Field

from rag_factory.errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    ModelLoadError,
    NotFoundError,
    RagFactoryError,
    ResourceExhaustedError,
)
from rag_factory.hooks.events import EmbeddingEvent
from rag_factory.hooks.manager import notify_safely
from rag_factory.models.embedding.backends.base import EmbeddingModel
from rag_factory.models.embedding.loader import CustomModelLoader
from rag_factory.models.embedding.pooling import FloatArray
from rag_factory.models.embedding.records import ModelRecord
from rag_factory.models.embedding.registry import ModelRegistry
from rag_factory.models.monitoring.prometheus import ServingMetrics
from rag_factory.serving.batcher import BatchOutput, MicroBatcher
from rag_factory.serving.limits import RequestLimits, check_texts

logger = logging.getLogger(__name__)

Readiness = Literal["not_loaded", "loading", "ready", "failed"]
# Errors that are the caller's to fix: never hidden behind a fallback.
_CLIENT_ERRORS = (InvalidArgumentError, NotFoundError, FailedPreconditionError, ResourceExhaustedError)


class BatchingConfig(BaseModel):
    """Micro-batching settings."""

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

    vectors: FloatArray
    served_by: ServedBy
    request_id: str
    queue_ms: float
    inference_ms: float
    total_ms: float
    batch_texts: int


# After a failed load, requests go straight to the fallback for this long before a retry.
LOAD_RETRY_AFTER_S = 30.0


@dataclass
class _ModelSlot:
    state: Readiness = "not_loaded"
    message: str = ""
    failed_at: float = 0.0
    batcher: MicroBatcher | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class EmbeddingEngine:
    """Serves embedding requests for registered models.

    Args:
        registry: Where model references resolve.
        loader: Loads (and caches) models.
        default_model: Reference served when a request names none; also the fallback model.
        limits: Request limits.
        batching: Micro-batching settings.
        hooks: Plugin manager for preprocessing and observer hooks (None: no hooks).
        metrics: Prometheus metrics (None: a private registry).
        router: A/B router (None: direct).
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
    ) -> None:
        self.registry = registry
        self.loader = loader
        self.default_model = default_model
        self.limits = limits or RequestLimits()
        self.batching = batching or BatchingConfig()
        self.hooks = hooks
        self.metrics = metrics or ServingMetrics()
        self.router: Router = router or DirectRouter()
        self._slots: dict[str, _ModelSlot] = {}
        self._slots_lock = threading.Lock()
        self._listeners: list[Callable[[EmbedOutcome, EmbedCall], None]] = []

    # -- requests ---------------------------------------------------------------------------------

    def embed(self, call: EmbedCall) -> EmbedOutcome:
        """Embed the texts of one call.

        Raises:
            InvalidArgumentError: The texts break a limit.
            ModelNotFoundError, AliasNotFoundError: The reference does not resolve.
            ModelDeprecatedError: The version is deprecated.
            ResourceExhaustedError: The model's queue is full.
            DeadlineExceededError: The call's deadline passed.
            ModelLoadError: Neither the requested nor the fallback model could serve.
        """
        started = time.perf_counter()
        check_texts(call.texts, self.limits)
        requested = call.model or self.default_model
        route = self.router.route(requested, call.routing_key)
        record = self.registry.resolve(route.model)
        try:
            model, output = self._run(record, call)
            served = self._served_by(record, model, call, route)
        except _CLIENT_ERRORS + (DeadlineExceededError,):
            raise
        except Exception as exc:
            fallback = self.registry.resolve(self.default_model)
            if fallback.model_id == record.model_id:
                self.metrics.requests.labels(record.model_id, record.metadata.version, route.variant, "error").inc()
                raise _as_load_error(exc, record) from exc
            reason = f"{type(exc).__name__}: {exc}"[:300]
            logger.warning("model %s failed (%s); serving %s instead", record.model_id, reason, fallback.model_id)
            self.metrics.fallbacks.labels(requested, fallback.model_id, type(exc).__name__).inc()
            model, output = self._run(fallback, call)
            served = self._served_by(fallback, model, call, route, fallback_reason=reason)
        outcome = EmbedOutcome(
            vectors=output.vectors,
            served_by=served,
            request_id=call.request_id or uuid.uuid4().hex,
            queue_ms=output.queue_ms,
            inference_ms=output.inference_ms,
            total_ms=(time.perf_counter() - started) * 1000.0,
            batch_texts=output.batch_texts,
        )
        self._observe(outcome, call)
        return outcome

    def add_listener(self, listener: Callable[[EmbedOutcome, EmbedCall], None]) -> None:
        """Call ``listener`` after every served request (the A/B layer records latency this way)."""
        self._listeners.append(listener)

    def _run(self, record: ModelRecord, call: EmbedCall) -> tuple[EmbeddingModel, BatchOutput]:
        batcher = self._batcher(record)
        texts = self._preprocess(call, record.model_id)
        future = batcher.submit(texts)
        self.metrics.queue_depth.labels(record.model_id).set(batcher.depth())
        try:
            output = future.result(timeout=call.timeout_s)
        except concurrent.futures.TimeoutError:
            raise DeadlineExceededError(
                f"the deadline passed while {record.model_id!r} was busy; retry with a longer deadline"
            ) from None
        self.metrics.batch_texts.labels(record.model_id).observe(output.batch_texts)
        return batcher.model, output

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
        self.metrics.requests.labels(served.model_id, served.version, served.variant, "ok").inc()
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
        slot = self._slot(record.model_id)
        if slot.batcher is not None:
            return slot.batcher
        with slot.lock:
            if slot.batcher is None:
                if slot.state == "failed" and time.monotonic() - slot.failed_at < LOAD_RETRY_AFTER_S:
                    raise ModelLoadError(f"model {record.model_id!r} failed to load recently: {slot.message}")
                slot.state, slot.message = "loading", ""
                try:
                    _, model = self.registry.load_model(record.model_id, self.loader)
                except Exception as exc:
                    slot.state, slot.message = "failed", f"{type(exc).__name__}: {exc}"[:300]
                    slot.failed_at = time.monotonic()
                    raise
                slot.batcher = MicroBatcher(
                    model,
                    max_batch_texts=self.batching.max_batch_texts,
                    max_wait_ms=self.batching.max_wait_ms,
                    queue_capacity=self.batching.queue_capacity,
                )
                slot.state = "ready"
            return slot.batcher

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
        return record, slot.state, slot.message

    def loaded(self) -> list[tuple[str, EmbeddingModel]]:
        """Model ids with a ready batcher, and their models."""
        with self._slots_lock:
            return [(mid, slot.batcher.model) for mid, slot in self._slots.items() if slot.batcher is not None]

    def close(self) -> None:
        """Finish queued work and stop every batcher."""
        with self._slots_lock:
            slots = list(self._slots.values())
        for slot in slots:
            if slot.batcher is not None:
                slot.batcher.close()


def _as_load_error(exc: Exception, record: ModelRecord) -> RagFactoryError:
    if isinstance(exc, RagFactoryError):
        return exc
    return ModelLoadError(f"model {record.model_id!r} ({record.ref}) failed: {type(exc).__name__}: {exc}")

"""Prometheus metrics of the embedding service, in a registry of their own (one per server)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServingMetrics:
    """Requests, latency, batch sizes, queue depth, shed requests and fallbacks, labelled by model and version."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "rag_factory_embed_requests",
            "Embedding requests by outcome.",
            ["model_id", "version", "variant", "status"],
            registry=self.registry,
        )
        self.texts = Counter(
            "rag_factory_embed_texts", "Texts embedded.", ["model_id", "version"], registry=self.registry
        )
        self.latency = Histogram(
            "rag_factory_embed_latency_seconds",
            "Time inside the server per request.",
            ["model_id", "version", "variant"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_texts = Histogram(
            "rag_factory_batch_texts",
            "Texts per micro-batch forward pass.",
            ["model_id"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "rag_factory_queue_depth", "Requests waiting in a model's queue.", ["model_id"], registry=self.registry
        )
        self.shed = Counter(
            "rag_factory_embed_shed",
            "Requests answered without vectors under load: queue_full and deadline_too_short "
            "(RESOURCE_EXHAUSTED at once), expired (deadline passed before compute) and cancelled (client "
            "left), both never computed, and late (deadline passed during its forward pass).",
            ["model_id", "reason"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "rag_factory_fallbacks",
            "Requests served by the base model because the requested one failed.",
            ["requested_model", "served_model_id", "reason"],
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """The current metrics in Prometheus text format."""
        return generate_latest(self.registry)

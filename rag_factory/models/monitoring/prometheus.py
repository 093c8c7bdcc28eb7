"""Prometheus metrics of the embedding service, in a registry of their own (one per server).

Every label value is bounded: model ids, versions and variants come from the registry after a reference
resolved (never the client's text; ``""`` when nothing resolved), reasons are the ``ErrorInfo`` reasons of
``rag_factory.errors`` (plus ``INTERNAL``), and loaded models are bounded by the model cache. Each metric is
described in ``docs/metrics.md``.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_MODEL_INFO_LABELS = ["model_id", "model_name", "version", "format", "backend", "precision", "dimension"]
# Distributions whose versions an operator asks for first when vectors or speed change between builds.
_BUILD_PACKAGES = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino"}
_BUILD_LABELS = ["version", "python", *_BUILD_PACKAGES]


@dataclass(frozen=True)
class LoadedModel:
    """A model the model cache holds now, as Prometheus labels it, with its queue."""

    model_id: str
    model_name: str
    version: str
    format: str
    backend: str
    precision: str
    dimension: int
    queue_depth: int  # requests waiting in its micro-batcher's queue (not the running batch)


LoadedModels = Callable[[], Iterable[LoadedModel]]


class _LoadedModelsCollector(Collector):
    """``rag_factory_model_info`` and ``rag_factory_queue_depth``, read from the live models at scrape time.

    Read, not set: a gauge set on submit keeps its last value while the server idles, and a model the
    cache evicted would keep its series forever.
    """

    def __init__(self) -> None:
        self.sources: list[LoadedModels] = []

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # The names, so the registry refuses a clash at registration without calling the sources.
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        info, depth = self._families()
        for source in self.sources:
            for model in source():
                labels = [model.model_id, model.model_name, model.version, model.format]
                info.add_metric([*labels, model.backend, model.precision, str(model.dimension)], 1.0)
                depth.add_metric([model.model_id], float(model.queue_depth))
        yield info
        yield depth

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        info = GaugeMetricFamily(
            "rag_factory_model_info",
            "1 for each model the model cache holds now (loaded and serving); the series goes away when the "
            "model is evicted.",
            labels=_MODEL_INFO_LABELS,
        )
        depth = GaugeMetricFamily(
            "rag_factory_queue_depth",
            "Requests waiting in a loaded model's micro-batching queue at scrape time, not counting the batch "
            "being computed (model ids that share one loaded model share its queue).",
            labels=["model_id"],
        )
        return info, depth


def build_labels() -> dict[str, str]:
    """Labels of ``rag_factory_build_info``: our version, Python's, and the inference runtimes' ("" if absent)."""
    labels = {"version": _distribution_version("rag-factory") or "0+unknown", "python": platform.python_version()}
    for label, distribution in _BUILD_PACKAGES.items():
        labels[label] = _distribution_version(distribution)
    return labels


def _distribution_version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return ""


class ServingMetrics:
    """Requests, latency, batch sizes, queue depth, shed requests, fallbacks, loaded models and the build.

    Args:
        registry: Registry to create the metrics in; a new one if None.
        process_metrics: Also collect the process's CPU, memory, open files, garbage collection and Python
            version (prometheus_client's process, GC and platform collectors); a server process wants them,
            an engine embedded in someone else's process usually has them already.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, process_metrics: bool = False) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "rag_factory_embed_requests",
            "Embedding requests by outcome: status is ok or error, reason the error's ErrorInfo reason ('' when "
            "ok, INTERNAL for an unexpected failure). model_id and version are those of the model that served or "
            "failed, '' when the reference did not resolve.",
            ["model_id", "version", "variant", "status", "reason"],
            registry=self.registry,
        )
        self.texts = Counter(
            "rag_factory_embed_texts",
            "Texts of requests answered with vectors, by the model that served them.",
            ["model_id", "version"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "rag_factory_embed_latency_seconds",
            "Time inside the engine of each request answered with vectors (queue, forward pass and bookkeeping).",
            ["model_id", "version", "variant"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_texts = Histogram(
            "rag_factory_batch_texts",
            "Texts per completed micro-batch forward pass, observed once per pass (the sum is the texts "
            "computed, the count the passes run).",
            ["model_id"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
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
            "Requests the default model answered because the model they were routed to failed (and they allowed "
            "a fallback): the failed model's id, the default model's id and the failure's ErrorInfo reason.",
            ["failed_model_id", "served_model_id", "reason"],
            registry=self.registry,
        )
        self.build_info = Gauge(
            "rag_factory_build_info",
            "Always 1: the rag-factory version, the Python version and the installed inference runtimes ('' when "
            "absent).",
            _BUILD_LABELS,
            registry=self.registry,
        )
        self.build_info.labels(**build_labels()).set(1)
        self._loaded = _LoadedModelsCollector()
        self.registry.register(self._loaded)
        if process_metrics:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    def watch_models(self, source: LoadedModels) -> None:
        """Report the models ``source()`` returns at each scrape (model info and queue depth).

        Args:
            source: Called at scrape time, from the scraping thread; returns the loaded models now.
        """
        self._loaded.sources.append(source)

    def exposition(self) -> bytes:
        """The current metrics in Prometheus text format."""
        return generate_latest(self.registry)

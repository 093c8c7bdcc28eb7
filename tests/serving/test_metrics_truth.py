"""Metrics that tell the truth (issue 19): every outcome counted, bounded labels, live queue depth,
one batch-size observation per forward pass, loaded models and the build, and the opt-in request log.

Each test drives a real engine over the real ONNX MiniLM and reads its Prometheus registry, as a scrape
would. ``docs/metrics.md`` describes every metric these tests pin down.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

import pytest

from rag_factory.errors import RagFactoryError
from rag_factory.models.embedding import CustomModelLoader, ModelRegistry
from rag_factory.models.monitoring import ServingMetrics
from rag_factory.serving.engine import BatchingConfig, EmbedCall, EmbeddingEngine
from rag_factory.serving.request_log import MAX_CLIENT_CHARS
from tests.conftest import register_minilm_onnx

MODEL = "minilm-onnx"
BROKEN = "ft-1.1.0"  # registered with weights that are not an ONNX graph: it fails to load
EngineFactory = Callable[..., EmbeddingEngine]


@pytest.fixture(scope="module")
def registry(onnx_export_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelRegistry]:
    """minilm-onnx (the default), minilm-old (deprecated) and ft@1.1.0, whose weights are damaged."""
    path = tmp_path_factory.mktemp("metrics-registry")
    registry = ModelRegistry(path / "registry")
    register_minilm_onnx(registry, MODEL, "1.0.0", onnx_export_dir)
    register_minilm_onnx(registry, "minilm-old", "0.9.0", onnx_export_dir)
    registry.deprecate("minilm-old", reason="superseded by 1.0.0")
    damaged = path / "ft-1.1.0"
    damaged.mkdir()
    (damaged / "model.onnx").write_bytes(b"this is not an onnx graph")
    register_minilm_onnx(registry, BROKEN, "1.1.0", damaged, model_name="ft")
    yield registry
    registry.close()


@pytest.fixture(scope="module")
def loader(model_cache_dir: Path) -> Iterator[CustomModelLoader]:
    """One loader for the module: the model loads once, each test's engine (and metrics) serves it."""
    loader = CustomModelLoader(cache_dir=model_cache_dir)
    yield loader
    loader.clear_cache()


@pytest.fixture
def engine_factory(registry: ModelRegistry, loader: CustomModelLoader) -> Iterator[EngineFactory]:
    """Engines with fresh metrics over the module's model; all closed after the test."""
    engines: list[EmbeddingEngine] = []

    def factory(*, max_wait_ms: float = 2.0, request_log: bool = False) -> EmbeddingEngine:
        engine = EmbeddingEngine(
            registry,
            loader,
            default_model=MODEL,
            batching=BatchingConfig(max_wait_ms=max_wait_ms),
            request_log=request_log,
        )
        engines.append(engine)
        return engine

    yield factory
    for engine in engines:
        engine.close()


def _sample(engine: EmbeddingEngine, name: str, **labels: str) -> float:
    return engine.metrics.registry.get_sample_value(name, labels) or 0.0


def _requests(engine: EmbeddingEngine, status: str, reason: str = "", model_id: str = "", version: str = "") -> float:
    return _sample(
        engine,
        "rag_factory_embed_requests_total",
        model_id=model_id,
        version=version,
        variant="",
        status=status,
        reason=reason,
    )


# -- 1. every outcome is counted, with the reason the client gets -----------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("call", "reason", "model_id", "version"),
    [
        (EmbedCall([]), "INVALID_ARGUMENT", "", ""),
        (EmbedCall(["hello"], model="no-such-model"), "MODEL_NOT_FOUND", "", ""),
        (EmbedCall(["hello"], model="minilm@no-such-alias"), "ALIAS_NOT_FOUND", "", ""),
        (EmbedCall(["hello"], model="minilm-old"), "MODEL_DEPRECATED", "", ""),
        (EmbedCall(["hello"], timeout_s=0), "DEADLINE_EXCEEDED", "", ""),
        (EmbedCall(["hello"], model="ft@1.1.0"), "FALLBACK_REFUSED", BROKEN, "1.1.0"),
    ],
    ids=["invalid-argument", "unknown-model", "unknown-alias", "deprecated", "deadline-passed", "fallback-refused"],
)
def test_a_failed_request_is_counted_as_an_error_with_its_reason(
    engine_factory: EngineFactory, call: EmbedCall, reason: str, model_id: str, version: str
) -> None:
    engine = engine_factory()
    with pytest.raises(RagFactoryError) as failed:
        engine.embed(call)

    assert failed.value.reason == reason  # the ErrorInfo reason the client gets is the label
    assert _requests(engine, "error", reason, model_id, version) == 1
    # Only the resolved model's registered id ever becomes a label, never the client's reference.
    exposition = engine.metrics.exposition().decode()
    assert "no-such" not in exposition and "ft@1.1.0" not in exposition


@pytest.mark.slow
def test_served_and_failed_requests_add_up_to_every_request_made(engine_factory: EngineFactory) -> None:
    engine = engine_factory()
    calls = [EmbedCall(["a"]), EmbedCall([]), EmbedCall(["b", "c"]), EmbedCall(["d"], model="nope")]
    for call in calls:
        with contextlib.suppress(RagFactoryError):
            engine.embed(call)

    assert _requests(engine, "ok", model_id=MODEL, version="1.0.0") == 2
    assert _requests(engine, "error", "INVALID_ARGUMENT") == 1
    assert _requests(engine, "error", "MODEL_NOT_FOUND") == 1
    families = {family.name: family for family in engine.metrics.registry.collect()}
    counted = [
        sample.value for sample in families["rag_factory_embed_requests"].samples if sample.name.endswith("_total")
    ]
    assert sum(counted) == len(calls)


# -- 2. fallbacks are labelled by registered model ids ----------------------------------------------


@pytest.mark.slow
def test_a_fallback_is_labelled_with_the_failed_models_id_not_the_clients_reference(
    engine_factory: EngineFactory,
) -> None:
    engine = engine_factory()
    outcome = engine.embed(EmbedCall(["hello"], model="ft@1.1.0", allow_fallback=True))

    assert outcome.served_by.fallback and outcome.served_by.model_id == MODEL
    fallbacks = _sample(
        engine,
        "rag_factory_fallbacks_total",
        failed_model_id=BROKEN,
        served_model_id=MODEL,
        reason="MODEL_LOAD_FAILED",
    )
    assert fallbacks == 1
    assert _requests(engine, "ok", model_id=MODEL, version="1.0.0") == 1
    assert "ft@1.1.0" not in engine.metrics.exposition().decode()


# -- 3. the queue depth is read when scraped --------------------------------------------------------


@pytest.mark.slow
def test_the_queue_depth_shows_waiting_requests_and_zero_when_idle(engine_factory: EngineFactory) -> None:
    engine = engine_factory()
    engine.load()
    long_texts = ["a rather long scientific abstract about protein folding and its kinetics " * 12] * 24

    def depth() -> float | None:
        return engine.metrics.registry.get_sample_value("rag_factory_queue_depth", {"model_id": MODEL})

    assert depth() == 0  # loaded, nothing asked yet
    with ThreadPoolExecutor(2) as pool:
        busy = pool.submit(engine.embed, EmbedCall(long_texts))  # a forward pass of ~0.5 s on 2 cores
        time.sleep(0.05)
        waiting = pool.submit(engine.embed, EmbedCall(["queued behind it"]))
        end = time.monotonic() + 10
        while depth() != 1 and not waiting.done():
            assert time.monotonic() < end, "the second request never showed in the queue"
            time.sleep(0.002)
        busy.result(timeout=60)
        waiting.result(timeout=60)

    assert depth() == 0  # idle again: the old gauge kept the value set at the last submit (1)


# -- 4. batch sizes: once per forward pass; expired work is never computed -------------------------


@pytest.mark.slow
def test_batch_texts_are_observed_once_per_forward_pass_so_they_sum_to_the_texts_embedded(
    engine_factory: EngineFactory,
) -> None:
    engine = engine_factory(max_wait_ms=100)  # long enough for concurrent requests to share passes
    engine.load()
    clients = 8
    calls = [EmbedCall([f"text {i}.{j} about protein folding" for j in range(1 + i % 3)]) for i in range(clients)]
    barrier = threading.Barrier(clients)

    def embed(call: EmbedCall) -> int:
        barrier.wait()
        return engine.embed(call).batch_texts

    with ThreadPoolExecutor(clients) as pool:
        batch_sizes = list(pool.map(embed, calls))

    texts = sum(len(call.texts) for call in calls)
    assert max(batch_sizes) > len(calls[-1].texts)  # requests did share forward passes
    assert _sample(engine, "rag_factory_embed_texts_total", model_id=MODEL, version="1.0.0") == texts
    assert _sample(engine, "rag_factory_batch_texts_sum", model_id=MODEL) == texts
    assert _sample(engine, "rag_factory_batch_texts_count", model_id=MODEL) < clients


@pytest.mark.slow
def test_a_request_that_expires_while_its_batch_waits_is_neither_computed_nor_observed(
    engine_factory: EngineFactory,
) -> None:
    engine = engine_factory(max_wait_ms=400)  # the batch waits 0.4 s for company
    engine.load()
    with ThreadPoolExecutor(2) as pool:
        on_time = pool.submit(engine.embed, EmbedCall(["on time", "also on time"], timeout_s=30))
        time.sleep(0.02)
        late = pool.submit(engine.embed, EmbedCall(["late"], timeout_s=0.1))  # joins, then expires in the wait
        assert len(on_time.result(timeout=30).vectors) == 2
        with pytest.raises(RagFactoryError, match="deadline"):
            late.result(timeout=30)

    assert _sample(engine, "rag_factory_batch_texts_sum", model_id=MODEL) == 2
    assert _sample(engine, "rag_factory_batch_texts_count", model_id=MODEL) == 1
    assert _sample(engine, "rag_factory_embed_shed_total", model_id=MODEL, reason="expired") == 1
    assert _requests(engine, "error", "DEADLINE_EXCEEDED", MODEL, "1.0.0") == 1


# -- 5. build and model info ------------------------------------------------------------------------


def test_build_info_names_our_version_and_pythons() -> None:
    metrics = ServingMetrics()
    families = {family.name: family for family in metrics.registry.collect()}
    (sample,) = families["rag_factory_build_info"].samples

    assert sample.value == 1
    assert sample.labels["version"] == version("rag-factory")
    assert sample.labels["python"].count(".") == 2 and "onnxruntime" in sample.labels


def test_process_metrics_are_collected_only_when_asked() -> None:
    assert ServingMetrics().registry.get_sample_value("process_cpu_seconds_total") is None
    registry = ServingMetrics(process_metrics=True).registry
    assert (registry.get_sample_value("process_cpu_seconds_total") or 0) > 0
    assert {"python_info", "python_gc_collections"} <= {family.name for family in registry.collect()}


@pytest.mark.slow
def test_model_info_lists_the_loaded_models_and_forgets_an_evicted_one(
    registry: ModelRegistry, model_cache_dir: Path
) -> None:
    loader = CustomModelLoader(cache_dir=model_cache_dir)  # its own: this test empties the cache
    engine = EmbeddingEngine(registry, loader, default_model=MODEL)
    labels = {
        "model_id": MODEL,
        "model_name": "minilm",
        "version": "1.0.0",
        "format": "onnx",
        "backend": "onnx",
        "precision": "fp32",
        "dimension": "384",
    }
    try:
        assert engine.metrics.registry.get_sample_value("rag_factory_model_info", labels) is None  # not loaded
        engine.load()
        assert engine.metrics.registry.get_sample_value("rag_factory_model_info", labels) == 1

        loader.clear_cache()  # what the memory budget does to a model nobody asked for lately

        exposition = engine.metrics.exposition().decode()
        assert "rag_factory_model_info{" not in exposition and "rag_factory_queue_depth{" not in exposition
    finally:
        engine.close()
        loader.clear_cache()


# -- 6. the request log -----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_request_log_writes_one_json_line_per_request_and_never_the_texts(
    engine_factory: EngineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    engine = engine_factory(request_log=True)
    secret = "patient 4711 has a BRCA1 mutation"
    caplog.set_level(logging.INFO, logger="rag_factory.requests")

    engine.embed(EmbedCall([secret, "second text"], request_id="req-1"))
    with pytest.raises(RagFactoryError):
        engine.embed(EmbedCall([secret], model="forged\nline " + "x" * 500, request_id="req-2"))

    records = [record for record in caplog.records if record.name == "rag_factory.requests"]
    assert len(records) == 2
    assert all("\n" not in record.getMessage() and secret not in record.getMessage() for record in records)
    served, failed = (json.loads(record.getMessage()) for record in records)
    assert {key: served[key] for key in ("request_id", "model_id", "version", "texts", "chars", "status")} == {
        "request_id": "req-1",
        "model_id": MODEL,
        "version": "1.0.0",
        "texts": 2,
        "chars": len(secret) + len("second text"),
        "status": "ok",
    }
    assert served["reason"] == "" and served["fallback"] is False
    assert served["total_ms"] >= served["inference_ms"] > 0 and served["queue_ms"] >= 0
    assert (failed["status"], failed["reason"], failed["model_id"]) == ("error", "MODEL_NOT_FOUND", "")
    assert (
        failed["requested_model"].startswith("forged\nline") and len(failed["requested_model"]) == MAX_CLIENT_CHARS + 1
    )
    assert failed["queue_ms"] is None and failed["total_ms"] >= 0


@pytest.mark.slow
def test_the_request_log_is_off_by_default(engine_factory: EngineFactory, caplog: pytest.LogCaptureFixture) -> None:
    engine = engine_factory()
    caplog.set_level(logging.INFO, logger="rag_factory.requests")

    engine.embed(EmbedCall(["hello"]))

    assert not [record for record in caplog.records if record.name == "rag_factory.requests"]

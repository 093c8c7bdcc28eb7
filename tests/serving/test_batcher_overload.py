"""Under overload the engine refuses fast and computes nothing that no one waits for (issue 18, item 5).

A probe with 64 and 160 clients got 210 DEADLINE_EXCEEDED and no RESOURCE_EXHAUSTED, and requests whose
deadline had passed were still computed, so the server stayed busy for 25 minutes after a 45-second
burst. Each test holds the real model's forward pass at a gate, fills the queue behind it, and counts the
texts the model receives.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from rag_factory.arrays import VectorArray
from rag_factory.errors import DeadlineExceededError, ResourceExhaustedError
from rag_factory.models.embedding import CustomModelLoader, ModelRegistry
from rag_factory.models.embedding.backends.base import EmbeddingModel
from rag_factory.serving.batcher import MicroBatcher
from rag_factory.serving.engine import BatchingConfig, Cancellation, EmbedCall, EmbeddingEngine, EmbedOutcome
from rag_factory.serving.limits import RequestLimits
from tests.conftest import register_minilm_onnx

pytestmark = pytest.mark.slow

MODEL = "minilm-onnx"
EngineFactory = Callable[..., EmbeddingEngine]


class GatedModel:
    """The real model, observed: records every text it is asked to embed and holds forward passes
    until ``release()``."""

    def __init__(self, model: EmbeddingModel, monkeypatch: pytest.MonkeyPatch) -> None:
        self.received: list[str] = []
        self.in_forward_pass = threading.Event()
        self._open = threading.Event()
        encode = model.encode

        def gated_encode(texts: Sequence[str], batch_size: int | None = None) -> VectorArray:
            self.received.extend(texts)
            self.in_forward_pass.set()
            self._open.wait(30)
            return encode(texts, batch_size)

        monkeypatch.setattr(model, "encode", gated_encode)

    def release(self) -> None:
        self._open.set()


@pytest.fixture(scope="module")
def registry(onnx_export_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelRegistry]:
    registry = ModelRegistry(tmp_path_factory.mktemp("overload-registry"))
    register_minilm_onnx(registry, MODEL, "1.0.0", onnx_export_dir)
    yield registry
    registry.close()


@pytest.fixture(scope="module")
def loader(model_cache_dir: Path) -> Iterator[CustomModelLoader]:
    """One loader for the module: the model loads once, each test's engine serves it."""
    loader = CustomModelLoader(cache_dir=model_cache_dir)
    yield loader
    loader.clear_cache()


@pytest.fixture
def engine_factory(registry: ModelRegistry, loader: CustomModelLoader) -> Iterator[EngineFactory]:
    """Engines over the real model, with the given limits; all closed after the test."""
    engines: list[EmbeddingEngine] = []

    def factory(*, max_batch_texts: int = 4, **limits: object) -> EmbeddingEngine:
        engine = EmbeddingEngine(
            registry,
            loader,
            default_model=MODEL,
            limits=RequestLimits.model_validate(limits),
            batching=BatchingConfig(max_batch_texts=max_batch_texts, max_wait_ms=0),
        )
        engines.append(engine)
        return engine

    yield factory
    for engine in engines:
        engine.close()


def _gate(engine: EmbeddingEngine, monkeypatch: pytest.MonkeyPatch) -> GatedModel:
    """The engine's real model (loaded now), observed and held at a gate."""
    return GatedModel(engine.load()[1], monkeypatch)


def _texts(tag: str, count: int) -> list[str]:
    return [f"{tag} text {i} about protein folding" for i in range(count)]


def _shed(engine: EmbeddingEngine, reason: str, model_id: str = MODEL) -> float:
    value = engine.metrics.registry.get_sample_value(
        "rag_factory_embed_shed_total", {"model_id": model_id, "reason": reason}
    )
    return value or 0.0


def _queued(engine: EmbeddingEngine, pool: ThreadPoolExecutor, calls: list[EmbedCall]) -> list[Future[EmbedOutcome]]:
    """Start ``calls`` one after the other, each once the previous one waits in the queue."""
    futures: list[Future[EmbedOutcome]] = []
    for number, call in enumerate(calls, start=1):
        futures.append(pool.submit(engine.embed, call))
        _wait_until_queued(engine, number)
    return futures


def _wait_until_queued(engine: EmbeddingEngine, requests: int) -> None:
    """Wait until the engine reports ``requests`` waiting in the model's queue (read live at each scrape)."""
    end = time.monotonic() + 10
    while engine.metrics.registry.get_sample_value("rag_factory_queue_depth", {"model_id": MODEL}) != requests:
        if time.monotonic() > end:
            raise AssertionError(f"{requests} requests did not queue in time")
        time.sleep(0.005)


def _block(engine: EmbeddingEngine, pool: ThreadPoolExecutor, gate: GatedModel) -> Future[EmbedOutcome]:
    """One request inside the model's (held) forward pass: everything after it queues."""
    blocker = pool.submit(engine.embed, EmbedCall(["blocker"]))
    assert gate.in_forward_pass.wait(10)
    return blocker


def test_a_full_queue_refuses_a_request_at_once_with_resource_exhausted(
    engine_factory: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_factory(max_queued_texts=8)
    gate = _gate(engine, monkeypatch)
    with ThreadPoolExecutor(4) as pool:
        blocker = _block(engine, pool, gate)
        waiting = _queued(engine, pool, [EmbedCall(_texts("a", 4)), EmbedCall(_texts("b", 4))])  # 8 texts queued

        started = time.monotonic()
        with pytest.raises(ResourceExhaustedError) as refused:
            engine.embed(EmbedCall(["one more"], timeout_s=30))
        refused_after_s = time.monotonic() - started
        gate.release()
        served = [future.result(timeout=30) for future in (blocker, *waiting)]

    assert refused_after_s < 0.5  # at once, not when its 30 s deadline passes
    assert "busy" in refused.value.message and "retry" in refused.value.message
    assert refused.value.metadata == {"cause": "queue_full"}
    assert [len(outcome.vectors) for outcome in served] == [1, 4, 4]
    assert "one more" not in gate.received
    assert _shed(engine, "queue_full") == 1
    # The queue has room again once it drained.
    assert len(engine.embed(EmbedCall(_texts("c", 8), timeout_s=30)).vectors) == 8


def test_a_request_whose_deadline_passes_in_the_queue_is_never_computed(
    engine_factory: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_factory()
    gate = _gate(engine, monkeypatch)
    with ThreadPoolExecutor(2) as pool:
        blocker = _block(engine, pool, gate)
        late = pool.submit(engine.embed, EmbedCall(_texts("late", 2), timeout_s=0.3))
        with pytest.raises(DeadlineExceededError):
            late.result(timeout=10)
        gate.release()
        blocker.result(timeout=30)
    after = engine.embed(EmbedCall(["after"], timeout_s=30))

    assert len(after.vectors) == 1
    assert gate.received == ["blocker", "after"]  # no batch computed the texts no one waited for
    assert _shed(engine, "expired") == 1


def test_the_batcher_drops_an_expired_request_even_when_no_one_cancels_it(
    engine_factory: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker itself checks deadlines, at dequeue and when it forms a batch, for callers that do not
    time out on their own."""
    model = engine_factory().load()[1]
    gate = GatedModel(model, monkeypatch)
    batcher = MicroBatcher(model, max_batch_texts=8, max_wait_ms=0, queue_capacity=16)
    try:
        blocker = batcher.submit(["blocker"])
        assert gate.in_forward_pass.wait(10)
        late = batcher.submit(_texts("late", 2), deadline=time.monotonic() + 0.2)
        on_time = batcher.submit(["on time"], deadline=time.monotonic() + 30)
        time.sleep(0.3)
        gate.release()

        assert blocker.result(timeout=30).vectors.shape == (1, 384)
        assert on_time.result(timeout=30).vectors.shape == (1, 384)
        with pytest.raises(DeadlineExceededError, match="not computed"):
            late.result(timeout=10)
    finally:
        batcher.close()
    assert gate.received == ["blocker", "on time"]


def test_a_call_whose_deadline_passed_before_it_started_is_not_queued(
    engine_factory: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gRPC hands a call to the engine after it waited for a server thread; its deadline may be gone."""
    engine = engine_factory()
    gate = _gate(engine, monkeypatch)
    gate.release()

    with pytest.raises(DeadlineExceededError, match="before the server could start it"):
        engine.embed(EmbedCall(["too late"], timeout_s=-0.5))

    assert gate.received == []
    assert _shed(engine, "expired", model_id="") == 1


def test_a_cancelled_call_leaves_the_queue_and_is_never_computed(
    engine_factory: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_factory(max_queued_texts=4)
    gate = _gate(engine, monkeypatch)
    cancellation = Cancellation()
    with ThreadPoolExecutor(3) as pool:
        blocker = _block(engine, pool, gate)
        left = pool.submit(engine.embed, EmbedCall(_texts("left", 4)), cancellation=cancellation)
        _wait_until_queued(engine, 1)

        cancellation.cancel()  # what a servicer's context.add_callback does when the client goes away
        with pytest.raises(DeadlineExceededError, match="cancelled by its client"):
            left.result(timeout=5)
        # Its 4 texts no longer take room in the queue.
        room = pool.submit(engine.embed, EmbedCall(_texts("room", 4), timeout_s=30))
        gate.release()
        assert len(room.result(timeout=30).vectors) == 4
        blocker.result(timeout=30)

    assert not any(text.startswith("left") for text in gate.received)
    assert _shed(engine, "cancelled") == 1


def test_a_request_that_cannot_be_reached_before_its_deadline_is_refused_at_once(
    engine_factory: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The estimate: texts queued ahead times the measured seconds per text, against the time left."""
    engine = engine_factory(max_batch_texts=64, max_queued_texts=10_000)
    warm_up = engine.embed(EmbedCall(_texts("warm-up", 64)))  # measures the model's seconds per text
    seconds_per_text = warm_up.inference_ms / 1000 / warm_up.batch_texts
    timeout_s = min(0.25, 800 * seconds_per_text / 3)  # a third of the estimated time of 800 texts ahead
    gate = _gate(engine, monkeypatch)
    gone = Cancellation()  # the 800 texts ahead are cancelled afterwards: the test need not compute them
    with ThreadPoolExecutor(6) as pool:
        blocker = _block(engine, pool, gate)
        ahead = [pool.submit(engine.embed, EmbedCall(_texts(f"ahead-{i}", 200)), cancellation=gone) for i in range(4)]
        _wait_until_queued(engine, 4)

        started = time.monotonic()
        with pytest.raises(ResourceExhaustedError, match="before this call's deadline") as refused:
            engine.embed(EmbedCall(["hurried"], timeout_s=timeout_s))
        refused_after_s = time.monotonic() - started
        # A call with time enough is accepted behind the same queue.
        patient = pool.submit(engine.embed, EmbedCall(["patient"], timeout_s=60))
        _wait_until_queued(engine, 5)
        gone.cancel()
        gate.release()
        assert len(patient.result(timeout=30).vectors) == 1
        blocker.result(timeout=30)
        assert all(isinstance(future.exception(timeout=10), DeadlineExceededError) for future in ahead)

    assert refused_after_s < timeout_s
    assert refused.value.metadata == {"cause": "deadline_too_short"}
    assert gate.received == ["blocker", "patient"]
    assert _shed(engine, "deadline_too_short") == 1

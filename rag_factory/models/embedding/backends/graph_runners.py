"""The engines that run an ONNX graph for the ONNX backend: ONNX Runtime, or OpenVINO for static int8.

Both take the tokenizer's feeds and return the graph's first output. ``run_many`` lets an engine
overlap batches: OpenVINO runs one batch per stream while Python tokenizes the next.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag_factory.errors import ModelLoadError
from rag_factory.models.embedding.tokenization import IntArray

Feeds = dict[str, IntArray]
Array = np.ndarray[Any, Any]
# Turns one batch's raw output (and its feeds, for the attention mask) into what the caller keeps.
Finish = Callable[[Array, Feeds], Array]


class GraphRunner(Protocol):
    """Runs one ONNX graph; safe to call from several threads."""

    name: str
    input_names: set[str]
    output_dim: int | None  # from the graph's declared output shape, when it is static
    threads: int  # threads the engine computes with; 0 when it picks for itself (all cores)

    def run(self, feeds: Feeds) -> Array:
        """The first output for one batch."""
        ...

    def run_many(self, batches: Iterable[Feeds], finish: Finish) -> list[Array]:
        """``finish(output, feeds)`` of each batch, in order; ``batches`` is consumed lazily."""
        ...


# OpenVINO prepares kernels per input shape: the first call at a new length took 10 ms against 2 ms
# after (MiniLM, one query). Padding the token axis to a multiple of 16 (masked, so the vectors do
# not change) keeps the shapes few, and the latency copy is warmed up at each length up to 128.
TOKEN_BUCKET = 16
WARM_UP_TOKENS = 128


def _bucketed(feeds: Feeds) -> Feeds:
    length = feeds["attention_mask"].shape[1]
    padding = -length % TOKEN_BUCKET
    if not padding:
        return feeds
    # Padded positions get token id 0 and mask 0, which is what the tokenizer's own padding gives.
    return {name: np.pad(array, ((0, 0), (0, padding))) for name, array in feeds.items()}


class OrtRunner:
    """ONNX Runtime on CPU, or CUDA when asked for and installed."""

    def __init__(self, onnx_file: Path, *, device: str, threads: int | None, spinning: bool) -> None:
        import onnxruntime as ort  # imported here: a 0.2 s import only the ONNX path pays

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle ORT worker threads spin for a while by default. A sidecar shares the CPU with its host
        # application (and with other models' sessions), so spinning threads steal cores from them.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        if threads:
            options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self._session = ort.InferenceSession(str(onnx_file), options, providers=providers)
        except Exception as exc:
            raise ModelLoadError(f"ONNX Runtime could not load {str(onnx_file)!r}: {exc}") from exc
        self.input_names = {i.name for i in self._session.get_inputs()}
        self.name = self._session.get_providers()[0]
        self.threads = int(self._session.get_session_options().intra_op_num_threads)
        shape = self._session.get_outputs()[0].shape
        self.output_dim: int | None = shape[-1] if isinstance(shape[-1], int) else None

    def run(self, feeds: Feeds) -> Array:
        return np.asarray(self._session.run(None, feeds)[0], dtype=np.float32)

    def run_many(self, batches: Iterable[Feeds], finish: Finish) -> list[Array]:
        return [finish(self.run(feeds), feeds) for feeds in batches]


class OpenVinoRunner:
    """OpenVINO on CPU, compiled twice: two streams for many batches, one latency stream for one.

    Two streams (one batch per core) measured 92 documents/s on 2 cores against 82 with one stream,
    but a single short query on one stream gets one core and waits longer than on all of them, so a
    lone batch (the serving path) goes to a latency-compiled copy.
    """

    def __init__(self, onnx_file: Path, *, threads: int | None, streams: int | None = None) -> None:
        import openvino as ov

        cores = threads or os.cpu_count() or 1
        self._streams = max(1, min(streams or 2, cores))
        # OpenVINO would run the graph's float parts in bf16 on CPUs that have it; f32 is both closer to
        # fp32 and, on MiniLM, faster (97 against 90 documents/s).
        common: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            common["INFERENCE_NUM_THREADS"] = threads
        try:
            core = ov.Core()
            model = core.read_model(str(onnx_file))
            throughput = core.compile_model(
                model, "CPU", {**common, "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": self._streams}
            )
            latency = core.compile_model(model, "CPU", {**common, "PERFORMANCE_HINT": "LATENCY"})
        except Exception as exc:
            raise ModelLoadError(f"OpenVINO could not load {str(onnx_file)!r}: {exc}") from exc
        self.input_names = {port.get_any_name() for port in latency.inputs}
        self.name = "OpenVINO CPU"
        self.output_dim: int | None = None
        self.threads = int(latency.get_property("INFERENCE_NUM_THREADS"))
        self._request = latency.create_infer_request()
        self._queue = ov.AsyncInferQueue(throughput, self._streams)
        # An InferRequest and an AsyncInferQueue each serve one caller at a time.
        self._lock = threading.Lock()
        for length in range(TOKEN_BUCKET, WARM_UP_TOKENS + 1, TOKEN_BUCKET):
            self.run({name: np.ones((1, length), dtype=np.int64) for name in self.input_names})

    def run(self, feeds: Feeds) -> Array:
        length = feeds["attention_mask"].shape[1]
        with self._lock:
            self._request.infer(_bucketed(feeds))
            return np.array(self._request.get_output_tensor(0).data[:, :length], dtype=np.float32)

    def run_many(self, batches: Iterable[Feeds], finish: Finish) -> list[Array]:
        # Batches are submitted as they are tokenized, so the streams compute while Python prepares
        # the next one; ``finish`` (pooling) runs in the callback on the output still in OpenVINO's memory.
        results: dict[int, Array] = {}
        failures: list[BaseException] = []

        def collect(request: Any, job: tuple[int, Feeds]) -> None:
            index, feeds = job
            try:
                length = feeds["attention_mask"].shape[1]
                results[index] = finish(request.get_output_tensor(0).data[:, :length], feeds)
            except BaseException as exc:  # re-raised below, on the caller's thread
                failures.append(exc)

        with self._lock:
            self._queue.set_callback(collect)
            count = 0
            for count, feeds in enumerate(batches, start=1):
                self._queue.start_async(_bucketed(feeds), (count - 1, feeds))
            self._queue.wait_all()
        if failures:
            raise failures[0]
        return [results[i] for i in range(count)]

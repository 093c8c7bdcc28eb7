"""`rag-factory serve` with nothing configured serves the bundled model, over gRPC and HTTP (issue 19).

Before: in an empty folder it printed "listening on", logged `model 'minilm' is not registered;
registered: none` and stayed NOT_SERVING for ever. Now the first start registers the bundled
all-MiniLM-L6-v2 as minilm@1.0.0 (its lineage root) and serves it; later starts, fine-tunes and
`serve --model` reuse that registration. The servers here are real processes started the way a user
starts them: cwd an empty folder, HOME and caches inside it, free ports.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from plugin.results import decode_vectors
from rag_factory.cli import main
from rag_factory.errors import InvalidArgumentError
from rag_factory.jobs.fine_tune_job import register_base
from rag_factory.models.embedding import ModelRegistry
from rag_factory.models.embedding.hub import DEFAULT_BASE_MODEL, resolve_model_path
from rag_factory.models.embedding.models import EmbeddingModelMetadata
from rag_factory.models.training.registration import artifact_digest, ensure_base_registered
from rag_factory_contract.v1 import embedding_pb2, embedding_pb2_grpc
from sidecar.settings import SidecarSettings
from sidecar.startup import choose_default_model

pytestmark = pytest.mark.slow  # real sidecar processes loading the real bundled model

START_TIMEOUT_S = 180
TEXT = "BRCA1 mutations raise the risk of breast cancer"


@dataclass
class Served:
    """A `rag-factory serve` process: its folder (cwd), ports, and how long it took from launch to SERVING."""

    folder: Path
    process: subprocess.Popen[str]
    address: str
    http_port: int
    seconds_to_serving: float

    @property
    def registry_path(self) -> Path:
        return self.folder / "model_registry"  # the default, relative to the working directory

    def embed(self, texts: list[str]) -> embedding_pb2.EmbedResponse:
        with grpc.insecure_channel(self.address) as channel:
            request = embedding_pb2.EmbedRequest(texts=texts)
            response: embedding_pb2.EmbedResponse = embedding_pb2_grpc.EmbeddingServiceStub(channel).Embed(
                request, timeout=60
            )
            return response

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)


def _user_environment(folder: Path) -> dict[str, str]:
    # A new user's shell: no RAG_FACTORY_* settings, and every per-user cache inside the folder.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_FACTORY_")}
    env.update(HOME=str(folder / "home"), XDG_CACHE_HOME=str(folder / "cache"), HF_HOME=str(folder / "hf"))
    return env


def _launch(folder: Path, *args: str) -> tuple[Path, subprocess.Popen[str], float]:
    command = [sys.executable, "-m", "rag_factory.cli", "serve", "--address", "127.0.0.1:0"]
    process = subprocess.Popen(
        [*command, "--http-address", "127.0.0.1:0", *args],
        cwd=folder,
        env=_user_environment(folder),
        stdout=subprocess.PIPE,
        stderr=(folder / "stderr.log").open("a"),
        text=True,
    )
    return folder, process, time.perf_counter()


def _serving(folder: Path, process: subprocess.Popen[str], started: float) -> Served:
    """Wait for the two "listening on" lines, then for gRPC health to say SERVING."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or ()], daemon=True).start()
    announced: dict[str, str] = {}
    while len(announced) < 2:
        try:
            line = lines.get(timeout=1).strip()
        except queue.Empty:
            if process.poll() is not None or time.perf_counter() - started > START_TIMEOUT_S:
                process.kill()
                pytest.fail(f"serve did not start: {(folder / 'stderr.log').read_text()[-3000:]}")
            continue
        for prefix in ("http listening on ", "listening on "):
            if line.startswith(prefix):
                announced.setdefault(prefix, line.removeprefix(prefix))
                break
    address = announced["listening on "]
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while health.Check(health_pb2.HealthCheckRequest(), timeout=5).status != health_pb2.HealthCheckResponse.SERVING:
            assert time.perf_counter() - started < START_TIMEOUT_S, "never SERVING"
            time.sleep(0.05)
    http_port = int(announced["http listening on "].rpartition(":")[2])
    return Served(folder, process, address, http_port, time.perf_counter() - started)


@pytest.fixture(scope="module")
def local_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sentence-transformers directory of the user's own: the bundled model plus a file, so other content."""
    target = tmp_path_factory.mktemp("models") / "My MiniLM"
    shutil.copytree(resolve_model_path(DEFAULT_BASE_MODEL), target)
    (target / "NOTES.md").write_text("fine-tuned elsewhere\n")
    return target


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, local_model_dir: Path) -> Iterator[tuple[Served, Served]]:
    """Two real `rag-factory serve` processes, each in an empty folder, started together so that their
    start-ups overlap: one with nothing configured, one given a local model directory with --model."""
    launched = [
        _launch(tmp_path_factory.mktemp("zero-config")),
        _launch(tmp_path_factory.mktemp("serve-model-dir"), "--model", str(local_model_dir)),
    ]
    started: list[Served] = []
    try:
        for folder, process, at in launched:
            started.append(_serving(folder, process, at))
        print(f"start to SERVING, two at once: zero-config {started[0].seconds_to_serving:.1f} s")
        yield started[0], started[1]
    finally:
        for _, process, _ in launched:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(60)


@pytest.fixture(scope="module")
def zero_config(servers: tuple[Served, Served]) -> Served:
    """`rag-factory serve` run in an empty folder with no config, no registry and no flags (free ports aside)."""
    return servers[0]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_an_empty_folder_serves_the_bundled_model_over_grpc(zero_config: Served) -> None:
    response = zero_config.embed([TEXT])

    served = response.served_by
    assert (served.model_id, served.version) == ("minilm-1.0.0", "1.0.0")
    vector = decode_vectors(response)[0]
    assert vector.shape == (384,) and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4


def test_the_same_process_answers_openai_embeddings_over_http(zero_config: Served) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{zero_config.http_port}/v1/embeddings",
        data=json.dumps({"input": [TEXT]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        body = json.load(answer)

    over_http = np.asarray(body["data"][0]["embedding"], dtype=np.float32)
    over_grpc = decode_vectors(zero_config.embed([TEXT]))[0]
    assert _cosine(over_http, over_grpc) >= 0.9999


def test_the_first_start_registers_the_bundled_model_with_its_lineage(zero_config: Served) -> None:
    with ModelRegistry(zero_config.registry_path) as registry:
        (record,) = registry.list_records()
        assert record.ref == "minilm@1.0.0" and record.metadata.format.value == "sentence_transformers"
        assert record.metadata.base_model == DEFAULT_BASE_MODEL and record.metadata.tags == ["base"]
        assert record.metadata.created_by == "rag-factory serve"
        # Production names it, so a later fine-tune (minilm@1.1.0) is not served by default until promoted.
        assert registry.aliases("minilm") == {"production": "minilm-1.0.0"}
        assert record.artifact_sha256 == artifact_digest(resolve_model_path(DEFAULT_BASE_MODEL))


def test_a_fine_tune_descends_from_the_model_the_server_served(zero_config: Served) -> None:
    # What `rag-factory train` and a fine-tuning job call to find their base: the served registration.
    with ModelRegistry(zero_config.registry_path) as registry:
        by_train = ensure_base_registered(registry, DEFAULT_BASE_MODEL)
        by_job = register_base(registry, DEFAULT_BASE_MODEL)
        assert by_train.model_id == by_job.model_id == "minilm-1.0.0"
        assert len(registry.list_records()) == 1  # found, not registered again


def test_a_second_start_and_the_hub_id_reuse_the_registration(zero_config: Served) -> None:
    # What the next `rag-factory serve`, and `serve --model sentence-transformers/all-MiniLM-L6-v2`, choose.
    settings = SidecarSettings.model_validate(
        {"models": {"embedding": {"registry_path": str(zero_config.registry_path)}}}
    )

    again = choose_default_model(settings)
    by_hub_id = choose_default_model(settings, DEFAULT_BASE_MODEL)

    assert again.embedding.default_model_id == "minilm"
    assert by_hub_id.embedding.default_model_id == "minilm-1.0.0"
    with ModelRegistry(zero_config.registry_path) as registry:
        assert [r.model_id for r in registry.list_records()] == ["minilm-1.0.0"]


def test_serve_model_dir_registers_the_directory_once_and_serves_it(
    servers: tuple[Served, Served], local_model_dir: Path
) -> None:
    served = servers[1]

    assert served.embed([TEXT]).served_by.model_id == "my-minilm-1.0.0"
    settings = SidecarSettings.model_validate({"models": {"embedding": {"registry_path": str(served.registry_path)}}})
    # A restart recognises the directory by its content hash.
    assert choose_default_model(settings, str(local_model_dir)).embedding.default_model_id == "my-minilm-1.0.0"
    with ModelRegistry(served.registry_path) as registry:
        (record,) = registry.list_records()
        assert record.model_id == "my-minilm-1.0.0" and record.metadata.tags == ["base"]
        assert record.metadata.base_model == str(local_model_dir) and record.metadata.created_by == "rag-factory serve"


def test_processes_starting_at_once_share_one_registration(tmp_path: Path) -> None:
    settings = SidecarSettings.model_validate({"models": {"embedding": {"registry_path": str(tmp_path / "registry")}}})
    barrier = threading.Barrier(2)

    def start() -> str:
        barrier.wait()
        return choose_default_model(settings).embedding.default_model_id

    with ThreadPoolExecutor(2) as pool:
        chosen = list(pool.map(lambda _: start(), range(2)))

    assert chosen == ["minilm", "minilm"]
    with ModelRegistry(tmp_path / "registry") as registry:
        assert [r.model_id for r in registry.list_records()] == ["minilm-1.0.0"]


def test_a_directory_that_is_not_a_model_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default registry, ./model_registry, goes there
    (tmp_path / "empty").mkdir()

    code = main(["serve", "--address", "127.0.0.1:0", "--http-address", "off", "--model", str(tmp_path / "empty")])

    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(f"error (MODEL_LOAD_FAILED): {str(tmp_path / 'empty')!r} is not a sentence-transformers model")
    )


def test_default_names_the_default_model_over_grpc_as_over_http(zero_config: Served) -> None:
    # HTTP took "default" for the server's default model (OpenAI clients always send a model), while gRPC
    # looked for a registry family called "default": one name, two meanings.
    with grpc.insecure_channel(zero_config.address) as channel:
        over_grpc = embedding_pb2_grpc.EmbeddingServiceStub(channel).Embed(
            embedding_pb2.EmbedRequest(texts=[TEXT], model="default"), timeout=60
        )
    request = urllib.request.Request(
        f"http://127.0.0.1:{zero_config.http_port}/v1/embeddings",
        data=json.dumps({"input": [TEXT], "model": "default"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        over_http = json.load(answer)

    assert over_grpc.served_by.model_id == over_http["model"] == "minilm-1.0.0"


@pytest.mark.parametrize("field", ["model_name", "model_id"])
def test_no_model_may_be_registered_as_default(zero_config: Served, tmp_path: Path, field: str) -> None:
    (tmp_path / "model.onnx").write_bytes(b"never loaded: refused before its files are read")
    names = {"model_id": "legal-1.0.0", "model_name": "legal", field: "default"}
    metadata = EmbeddingModelMetadata(**names, version="1.0.0", format="onnx", embedding_dim=384, max_seq_length=256)

    with ModelRegistry(zero_config.registry_path) as registry:
        with pytest.raises(InvalidArgumentError, match=f"{field} 'default' is reserved: requests use it to ask for"):
            registry.register_model(metadata, artifact_path=tmp_path)
        assert [r.model_id for r in registry.list_records()] == ["minilm-1.0.0"]

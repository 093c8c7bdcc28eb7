"""``kill -9`` of ``rag-factory serve`` while clients write; after a restart, every acknowledged write is there.

Shared by ``tests/sidecar/test_crash_durability.py`` (CI, a few kills) and ``benchmarks/reliability_run.py``
(30 or more). Writers of three kinds run at once against a real server process:

* registrations (``RegisterModel``, every third with a small artifact of its own);
* A/B outcomes (``Embed`` routed by a running experiment, then ``RecordOutcome`` with a unique marker value);
* job starts (``StartJob``, one per cycle).

The server is killed with SIGKILL at a random moment, its job workers too (as a host crash would), the
database is checked with ``PRAGMA integrity_check``, the server is restarted on the same registry, and every
write acknowledged so far (in any cycle) is looked up: registrations by ``GetModel`` (version and artifact
digest), outcomes by their marker in the experiment's stored results, routed requests by their stored
assignment (so their outcome can still be reported), jobs by ``GetJob`` (and they must have ended, since
their worker is gone).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rag_factory.data import bundled_dataset
from rag_factory.storage import database_path
from rag_factory_contract.v1 import (
    ab_pb2,
    ab_pb2_grpc,
    embedding_pb2,
    embedding_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)
from tests.sidecar.fuzz_client import integrity, kill_workers

EXPERIMENT = "durability"
FINISHED_JOBS = {
    training_pb2.JOB_STATUS_SUCCEEDED, training_pb2.JOB_STATUS_FAILED, training_pb2.JOB_STATUS_CANCELLED,
    training_pb2.JOB_STATUS_INTERRUPTED,
}  # fmt: skip


# -- the server process ----------------------------------------------------------------------------


@dataclass
class ServeProcess:
    """A running ``rag-factory serve`` process."""

    process: subprocess.Popen[bytes]
    address: str
    log: Path

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM and wait (SIGKILL after 60 s); returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        return int(self.process.returncode)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(registry: Path, cache: Path, workdir: Path, roots: Sequence[Path], timeout_s: float = 180) -> ServeProcess:
    """Start ``rag-factory serve`` on a free port over ``registry`` and wait until it reports SERVING.

    Args:
        registry: The registry folder (default model ``minilm-onnx``).
        cache: The model cache folder (shared by restarts, so ONNX sessions are not rebuilt).
        workdir: Where the config and the server's log go.
        roots: Folders clients may import artifacts and read datasets from.
        timeout_s: How long the server may take to start.

    Raises:
        RuntimeError: It exited or did not become SERVING in time (the message holds its log's tail).
    """
    port = _free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / f"sidecar-{port}.json"
    roots_list = [str(root) for root in roots]
    config.write_text(
        json.dumps(
            {
                "address": f"127.0.0.1:{port}",
                "http_address": None,  # these tests use gRPC only; 8080 may be taken
                "load_entry_point_plugins": False,
                "models": {
                    "embedding": {
                        "default_model_id": "minilm-onnx",
                        "registry_path": str(registry),
                        "cache_dir": str(cache),
                        "import_roots": roots_list,
                        "data_roots": roots_list,
                        "ab_testing": {"tick_interval_s": 1.0},
                    }
                },
            }
        )
    )
    log = workdir / f"serve-{port}.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "rag_factory.cli", "serve", "--config", str(config)],
            stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
    server = ServeProcess(process, f"127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(grpc.RpcError):
                if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return server
            time.sleep(0.1)
    server.stop()
    tail = log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"rag-factory serve did not become SERVING (exit code {process.returncode}):\n{tail}")


# -- what was acknowledged -------------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    """An acknowledged RegisterModel."""

    model_id: str
    version: str
    sha256: str


@dataclass
class Ledger:
    """Writes sent and writes acknowledged, per kind, over every cycle (thread-safe)."""

    registrations: dict[str, Registration] = field(default_factory=dict)
    outcomes: set[float] = field(default_factory=set)  # marker values of acknowledged RecordOutcome calls
    routed: set[str] = field(default_factory=set)  # request ids of acknowledged, A/B-routed Embed answers
    jobs: set[str] = field(default_factory=set)
    sent: dict[str, int] = field(default_factory=lambda: {"registrations": 0, "outcomes": 0, "jobs": 0})
    refused: dict[str, list[str]] = field(default_factory=dict)  # answers other than OK and UNAVAILABLE
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count_sent(self, kind: str) -> None:
        """One more write of ``kind`` was sent."""
        with self.lock:
            self.sent[kind] += 1

    def refuse(self, kind: str, error: grpc.RpcError) -> None:
        """Note an answer that is neither an acknowledgement nor the kill (kept for the report)."""
        if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            return  # the server died under the call: expected, and not acknowledged
        with self.lock:
            self.refused.setdefault(kind, []).append(f"{error.code().name}: {(error.details() or '')[:160]}")

    def acknowledged(self) -> dict[str, int]:
        """Acknowledged writes per kind."""
        with self.lock:
            return {
                "registrations": len(self.registrations), "outcomes": len(self.outcomes), "jobs": len(self.jobs),
                "routed": len(self.routed),
            }  # fmt: skip


# -- the writers -----------------------------------------------------------------------------------

JOB_OPTIONS = {
    "epochs": 1, "batch_size": 16, "train_max_seq_length": 32, "max_seq_length": 64, "validation_corpus_size": 120,
    "test_split": None, "export_onnx": False, "early_stopping_patience": 0,
}  # fmt: skip


@dataclass
class Workload:
    """What the writers of one run write: unique names, artifacts, the dataset for jobs."""

    run: str  # a prefix that makes this run's model ids unique
    artifacts: Path  # folder for small per-registration artifacts (inside the server's import roots)
    dataset: Path = field(default_factory=lambda: bundled_dataset("scifact_mini"))
    counter: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_number(self) -> int:
        """A number unique within the run (for ids, versions and outcome markers)."""
        with self.lock:
            self.counter += 1
            return self.counter


def _register_once(stub: registry_pb2_grpc.RegistryServiceStub, work: Workload, ledger: Ledger) -> None:
    number = work.next_number()
    model_id = f"{work.run}-m{number}"
    version = f"{number}.0.0"
    artifact = ""
    if number % 3 == 0:
        folder = work.artifacts / model_id
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(os.urandom(4096))  # unique content: its own digest to check
        artifact = str(folder)
    request = registry_pb2.RegisterModelRequest(
        metadata=registry_pb2.ModelMetadata(
            model_id=model_id, model_name=f"{work.run}-crash", version=version,
            format=registry_pb2.MODEL_FORMAT_ONNX, embedding_dim=384, max_seq_length=256,
        ),
        artifact_path=artifact,
    )  # fmt: skip
    ledger.count_sent("registrations")
    record = stub.RegisterModel(request, timeout=30).record
    with ledger.lock:
        ledger.registrations[model_id] = Registration(model_id, version, record.artifact_sha256)


def _outcome_once(
    embed: embedding_pb2_grpc.EmbeddingServiceStub, ab: ab_pb2_grpc.ABTestServiceStub, work: Workload, ledger: Ledger
) -> None:
    number = work.next_number()
    response = embed.Embed(
        embedding_pb2.EmbedRequest(texts=[f"claim {number}"], model="minilm", routing_key=f"user-{number}"), timeout=30
    )
    if response.served_by.experiment != EXPERIMENT:
        return
    with ledger.lock:
        ledger.routed.add(response.request_id)
    marker = number / 2**20  # exact in binary and JSON, in [0, 1): a plausible accuracy value
    ledger.count_sent("outcomes")
    ab.RecordOutcome(
        ab_pb2.RecordOutcomeRequest(request_id=response.request_id, metrics={"accuracy": marker}), timeout=30
    )
    with ledger.lock:
        ledger.outcomes.add(marker)
        ledger.routed.discard(response.request_id)  # its assignment is checked through its outcome


def _job_once(stub: training_pb2_grpc.TrainingServiceStub, work: Workload, ledger: Ledger) -> None:
    options = struct_pb2.Struct()
    options.update(JOB_OPTIONS)
    ledger.count_sent("jobs")
    job = stub.StartJob(training_pb2.StartJobRequest(data_dir=str(work.dataset), options=options), timeout=60).job
    with ledger.lock:
        ledger.jobs.add(job.job_id)


def _loop(kind: str, step: Callable[[], None], ledger: Ledger, stop: threading.Event, once: bool = False) -> None:
    while not stop.is_set():
        try:
            step()
        except grpc.RpcError as exc:
            ledger.refuse(kind, exc)
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                return  # the server is gone
        if once:
            return


def start_writers(
    channel: grpc.Channel, work: Workload, ledger: Ledger, stop: threading.Event
) -> list[threading.Thread]:
    """Two registration writers, two outcome writers and one job start (last), on one channel."""
    registry = registry_pb2_grpc.RegistryServiceStub(channel)
    embed = embedding_pb2_grpc.EmbeddingServiceStub(channel)
    ab = ab_pb2_grpc.ABTestServiceStub(channel)
    jobs = training_pb2_grpc.TrainingServiceStub(channel)
    loops: list[tuple[str, Callable[[], None], bool]] = [
        ("registrations", lambda: _register_once(registry, work, ledger), False),
        ("registrations", lambda: _register_once(registry, work, ledger), False),
        ("outcomes", lambda: _outcome_once(embed, ab, work, ledger), False),
        ("outcomes", lambda: _outcome_once(embed, ab, work, ledger), False),
        ("jobs", lambda: _job_once(jobs, work, ledger), True),
    ]
    threads = [
        threading.Thread(target=_loop, args=(kind, step, ledger, stop, once), name=f"writer-{kind}", daemon=True)
        for kind, step, once in loops
    ]
    for thread in threads:
        thread.start()
    return threads


# -- a kill cycle ----------------------------------------------------------------------------------


@dataclass
class KillRun:
    """The state of a series of kill cycles over one registry."""

    registry: Path
    cache: Path
    workdir: Path
    roots: Sequence[Path]
    work: Workload
    ledger: Ledger = field(default_factory=Ledger)
    kills: int = 0
    # kind -> {write: what is wrong}, over every restart so far (a write lost once stays lost)
    lost: dict[str, dict[str, str]] = field(default_factory=dict)
    integrity: list[str] = field(default_factory=list)
    experiment: str = ""  # the experiment's status (and reason) after the last restart

    @property
    def problems(self) -> list[str]:
        """Every lost or wrong acknowledged write, one readable line each."""
        return [f"{kind} {write}: {why}" for kind, writes in self.lost.items() for write, why in writes.items()]

    def start(self) -> ServeProcess:
        """A server on the registry."""
        return serve(self.registry, self.cache, self.workdir, self.roots)


def start_experiment(address: str, candidate: str = "minilm-next") -> None:
    """Start the experiment whose routed requests the outcome writers report on (split 0.5, steps held)."""
    plan = ab_pb2.RampPlan(steps=[0.5, 1.0], min_samples_per_step=1_000_000, min_step_duration_s=3600.0,
                           max_error_rate=0.5)  # fmt: skip
    with grpc.insecure_channel(address) as channel:
        ab_pb2_grpc.ABTestServiceStub(channel).StartExperiment(
            ab_pb2.StartExperimentRequest(name=EXPERIMENT, model_name="minilm", candidate=candidate, plan=plan),
            timeout=120,
        )


def kill_cycle(run: KillRun, server: ServeProcess, rng: random.Random, window_s: tuple[float, float]) -> ServeProcess:
    """Write, ``kill -9`` at a random moment, check the database, restart, and check every acknowledged write.

    In every other cycle the random moment is counted from the job start's answer rather than from the
    start of the writes: a job start takes seconds (its dataset is validated first), so otherwise few would
    be acknowledged before the kill. Returns the restarted server (what is lost is added to ``run.lost``).
    """
    stop = threading.Event()
    with grpc.insecure_channel(server.address) as channel:
        writers = start_writers(channel, run.work, run.ledger, stop)
        if run.kills % 2 == 0:
            writers[-1].join(timeout=120)  # the job writer sends one StartJob and ends
        time.sleep(rng.uniform(*window_s))
        server.kill()
        run.kills += 1
        stop.set()
        for writer in writers:
            writer.join(timeout=60)
    kill_workers(run.registry)  # a host crash takes the job workers too
    run.integrity.append(integrity(database_path(run.registry)))
    restarted = run.start()
    for kind, writes in verify(restarted.address, run.registry, run.ledger).items():
        run.lost.setdefault(kind, {}).update(writes)
    run.experiment = experiment_state(restarted.address)
    return restarted


def experiment_state(address: str) -> str:
    """The outcome writers' experiment as "STATUS (reason)"; outcomes are refused once it has ended."""
    with grpc.insecure_channel(address) as channel:
        try:
            experiment = (
                ab_pb2_grpc.ABTestServiceStub(channel)
                .GetExperiment(ab_pb2.GetExperimentRequest(name=EXPERIMENT), timeout=30)
                .experiment
            )
        except grpc.RpcError as exc:
            return f"GetExperiment answered {exc.code().name}"
    status = ab_pb2.ExperimentStatus.Name(experiment.status)
    return f"{status} ({experiment.reason})" if experiment.reason else status


def verify(address: str, registry: Path, ledger: Ledger) -> dict[str, dict[str, str]]:
    """Acknowledged writes that cannot be found: kind -> {id of the write: what is wrong} (empty when none)."""
    lost: dict[str, dict[str, str]] = {
        "registrations": {},
        "outcomes": {},
        "routed": {},
        "jobs": {},
        "jobs_running": {},
    }
    with grpc.insecure_channel(address) as channel:
        registry_stub = registry_pb2_grpc.RegistryServiceStub(channel)
        for registration in list(ledger.registrations.values()):
            try:
                record = registry_stub.GetModel(
                    registry_pb2.GetModelRequest(model=registration.model_id), timeout=30
                ).record
            except grpc.RpcError as exc:
                lost["registrations"][registration.model_id] = f"GetModel answered {exc.code().name}"
                continue
            if (record.metadata.version, record.artifact_sha256) != (registration.version, registration.sha256):
                lost["registrations"][registration.model_id] = (
                    f"changed: {record.metadata.version} {record.artifact_sha256}"
                )
        jobs = training_pb2_grpc.TrainingServiceStub(channel)
        for job_id in sorted(ledger.jobs):
            try:
                job = jobs.GetJob(training_pb2.GetJobRequest(job_id=job_id), timeout=30).job
            except grpc.RpcError as exc:
                lost["jobs"][job_id] = f"GetJob answered {exc.code().name}"
                continue
            if job.status not in FINISHED_JOBS:
                status = training_pb2.JobStatus.Name(job.status)
                lost["jobs_running"][job_id] = f"still {status} after a restart although its worker is gone"
    lost.update(_verify_outcomes(registry, ledger))
    return lost


def _verify_outcomes(registry: Path, ledger: Ledger) -> dict[str, dict[str, str]]:
    # Read through the experiment store itself (a second process may open the database at any time).
    from rag_factory.experiments.sqlite_store import SQLiteExperimentStore

    store = SQLiteExperimentStore(database_path(registry))
    try:
        values = store.load_results(EXPERIMENT).metrics.get("accuracy")
        found = {float(v) for v in values if not math.isnan(v)} if values is not None else set()
        with ledger.lock:
            outcomes, routed = set(ledger.outcomes), sorted(ledger.routed)
        return {
            "outcomes": {str(marker): "not in the stored outcomes" for marker in outcomes - found},
            "routed": {rid: "no stored arm assignment" for rid in routed if store.find_request(rid) is None},
        }
    finally:
        store.close()


def verify_artifacts(registry: Path, ledger: Ledger) -> list[str]:
    """Re-hash the stored artifact of every acknowledged registration that had one (server stopped)."""
    from rag_factory.models.embedding import ModelRegistry

    problems = []
    with ModelRegistry(registry) as opened:
        for registration in ledger.registrations.values():
            if not registration.sha256:
                continue
            try:
                opened.artifact_path(registration.model_id, verify=True)
            except Exception as exc:  # any failure to find or re-hash it is a lost write
                problems.append(f"artifact of {registration.model_id}: {type(exc).__name__}: {exc}"[:300])
    return problems


def staging_leftovers(registry: Path) -> int:
    """``.staging-*`` folders left in the artifact store (partial copies a crash interrupted)."""
    return sum(1 for _ in registry.rglob(".staging-*"))

"""Send fuzzed calls to a sidecar, tally the answers, and clean up what fuzzed StartJob calls started.

Shared by ``tests/sidecar/test_fuzz_rpcs.py`` (CI) and ``benchmarks/reliability_run.py`` (the long run).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import struct_pb2
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rag_factory_contract.v1 import (
    ab_pb2,
    ab_pb2_grpc,
    embedding_pb2,
    embedding_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)
from tests.sidecar.fuzz_messages import FuzzCase, Known

# A client mistake must never answer these: INTERNAL means a server defect, UNKNOWN an unmapped exception.
FAILING_CODES = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})


@dataclass(frozen=True)
class Outcome:
    """How one fuzzed call ended."""

    code: grpc.StatusCode
    details: str
    responses: tuple[Message, ...]
    seconds: float

    @property
    def failed(self) -> bool:
        """Whether the answer is one no request may ever get (INTERNAL or UNKNOWN)."""
        return self.code in FAILING_CODES


def send(channel: grpc.Channel, case: FuzzCase, timeout_s: float) -> Outcome:
    """Send ``case`` as raw bytes (so wire mutations travel) and read every response until the end."""
    rpc = case.rpc
    payloads = case.payloads()
    # request_serializer=None: the requests are already bytes.
    deserialize = rpc.response.FromString
    started = time.monotonic()
    responses: list[Message] = []
    try:
        if rpc.client_streaming and rpc.server_streaming:
            call = channel.stream_stream(rpc.path, None, deserialize)
            responses.extend(call(iter(payloads), timeout=timeout_s))
        elif rpc.client_streaming:
            responses.append(channel.stream_unary(rpc.path, None, deserialize)(iter(payloads), timeout=timeout_s))
        elif rpc.server_streaming:
            responses.extend(channel.unary_stream(rpc.path, None, deserialize)(payloads[0], timeout=timeout_s))
        else:
            responses.append(channel.unary_unary(rpc.path, None, deserialize)(payloads[0], timeout=timeout_s))
    except grpc.RpcError as exc:
        return Outcome(exc.code(), exc.details() or "", tuple(responses), time.monotonic() - started)
    return Outcome(grpc.StatusCode.OK, "", tuple(responses), time.monotonic() - started)


@dataclass
class Tally:
    """Answers per RPC and status code, and the cases that got a failing answer."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    failures: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)  # (RPC, code, request kind)
    by_kind: Counter[tuple[str, str]] = field(default_factory=Counter)  # (code, "well-formed" or "undecodable")
    # (RPC, code, start of the message): which checks the fuzz reaches, and which it never gets past
    reasons: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    keep: int = 3

    def add(self, case: FuzzCase, outcome: Outcome) -> None:
        """Count one answer; keep the first few cases of each failing (RPC, code, request kind)."""
        key = (case.rpc.id, outcome.code.name)
        self.counts[key] += 1
        self.reasons[(*key, outcome.details[:70])] += 1
        kind = "undecodable" if case.suffix else "well-formed"
        self.by_kind[(outcome.code.name, kind)] += 1
        if outcome.failed:
            kept = self.failures.setdefault((*key, kind), [])
            if len(kept) < self.keep:
                kept.append(f"{case!r}\n    -> {outcome.code.name}: {outcome.details[:200]}")

    @property
    def total(self) -> int:
        """Calls counted."""
        return sum(self.counts.values())

    def by_code(self) -> Counter[str]:
        """Calls per status code, over every RPC."""
        totals: Counter[str] = Counter()
        for (_, code), count in self.counts.items():
            totals[code] += count
        return totals

    def failing(self) -> int:
        """Calls answered INTERNAL or UNKNOWN."""
        return sum(count for (_, code), count in self.counts.items() if code in {c.name for c in FAILING_CODES})

    def markdown(self) -> str:
        """A markdown table: one row per RPC, one column per status code seen, and a total row."""
        codes = sorted({code for _, code in self.counts}, key=lambda code: (code != "OK", code))
        rpcs = list(dict.fromkeys(rpc for rpc, _ in self.counts))
        lines = [f"| RPC | {' | '.join(codes)} |", f"|---|{'---:|' * len(codes)}"]
        for rpc in rpcs:
            lines.append(f"| {rpc} | {' | '.join(str(self.counts.get((rpc, c), 0)) for c in codes)} |")
        totals = self.by_code()
        lines.append(f"| **all ({self.total})** | {' | '.join(f'**{totals[c]}**' for c in codes)} |")
        return "\n".join(lines)


def fuzz_call(channel: grpc.Channel, case: FuzzCase, known: Known, tally: Tally, timeout_s: float) -> Outcome:
    """Send one case, tally its answer, learn ids from it, and cancel a job it started."""
    outcome = send(channel, case, timeout_s)
    tally.add(case, outcome)
    for response in outcome.responses:
        known.harvest(response)
    if case.rpc.name == "StartJob" and outcome.code == grpc.StatusCode.OK:
        # Fuzzing must not train for real: a job that passed validation is cancelled at once.
        job_id = outcome.responses[0].job.job_id  # type: ignore[attr-defined]
        with contextlib.suppress(grpc.RpcError):  # if the cancel fails, the cleanup at the end kills its worker
            training_pb2_grpc.TrainingServiceStub(channel).CancelJob(
                training_pb2.CancelJobRequest(job_id=job_id), timeout=timeout_s
            )
    return outcome


def seed_objects(channel: grpc.Channel, known: Known, dataset: Path, timeout_s: float = 120) -> list[str]:
    """Create what the fuzz should find to act on: a running experiment and a job (cancelled at once).

    Without them, fuzzed A/B and job calls would only ever meet unknown names. Returns what could not be
    created (each is best effort: the fuzz runs either way).
    """
    plan = ab_pb2.RampPlan(steps=[0.5, 1.0], min_samples_per_step=1_000_000, min_step_duration_s=3600.0)
    options = struct_pb2.Struct()
    options.update({"epochs": 1, "batch_size": 16, "export_onnx": False, "test_split": None})
    calls: dict[str, Callable[[], Message]] = {
        "experiment": lambda: ab_pb2_grpc.ABTestServiceStub(channel).StartExperiment(
            ab_pb2.StartExperimentRequest(
                name="fuzz-exp", model_name="minilm", candidate="minilm-onnx-int8", plan=plan
            ),
            timeout=timeout_s,
        ),
        "job": lambda: training_pb2_grpc.TrainingServiceStub(channel).StartJob(
            training_pb2.StartJobRequest(data_dir=str(dataset), options=options), timeout=timeout_s
        ),
    }
    missing = []
    for name, call in calls.items():
        try:
            known.harvest(call())
        except grpc.RpcError as exc:
            missing.append(f"{name}: {exc.code().name}: {(exc.details() or '')[:120]}")
    for job_id in known.values.get("jobs", [])[1:]:
        with contextlib.suppress(grpc.RpcError):  # a job cancelled at once (issue 18, item 2)
            training_pb2_grpc.TrainingServiceStub(channel).CancelJob(training_pb2.CancelJobRequest(job_id=job_id))
    return missing


def server_problem(channel: grpc.Channel, timeout_s: float = 5.0, attempts: int = 2) -> str | None:
    """None when the server answers health SERVING and embeds a text; else what went wrong."""
    problem = None
    for _ in range(attempts):
        try:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
            if status.status != health_pb2.HealthCheckResponse.SERVING:
                return f"health answers {health_pb2.HealthCheckResponse.ServingStatus.Name(status.status)}"
            response = embedding_pb2_grpc.EmbeddingServiceStub(channel).Embed(
                embedding_pb2.EmbedRequest(texts=["aspirin lowers the risk of heart attacks"]), timeout=timeout_s * 4
            )
            if response.count == 1:
                return None
            problem = f"Embed of one text returned {response.count} vectors"
        except grpc.RpcError as exc:
            problem = f"{exc.code().name}: {(exc.details() or '')[:200]}"
    return problem


def integrity(database: Path) -> str:
    """``PRAGMA integrity_check`` of a SQLite file (``"ok"`` when intact)."""
    with sqlite3.connect(database, timeout=30) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


# -- cleaning up job workers -----------------------------------------------------------------------


def worker_pids(registry_path: Path) -> list[int]:
    """Live job worker processes (``python -m rag_factory.jobs.worker JOB REGISTRY``) of one registry.

    Found by their command line, which names the registry: with a registry folder unique to a test,
    these are exactly the workers that test's server started.
    """
    wanted = str(registry_path)
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [word.decode(errors="replace") for word in argv]
        if "rag_factory.jobs.worker" in words and wanted in words:
            pids.append(int(entry.name))
    return pids


def kill_workers(registry_path: Path) -> int:
    """SIGKILL every job worker of ``registry_path`` (by pid); returns how many were killed."""
    killed = 0
    for pid in worker_pids(registry_path):
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            pass
    return killed


def end_unfinished_jobs(registry_path: Path, job_ids: Iterable[str] | None = None) -> list[str]:
    """Mark jobs that are still pending, running or cancelling as interrupted; returns their ids.

    Only for teardown, after their workers were killed: a server that never notices a dead worker keeps a
    ``WatchJob`` thread polling forever (issue 18, item 2), which would keep the test process from exiting.
    """
    from rag_factory.jobs.job_store import JobStatus, SQLiteJobStore
    from rag_factory.storage import database_path

    store = SQLiteJobStore(database_path(registry_path))
    try:
        ended = []
        wanted = set(job_ids) if job_ids is not None else None
        for job in store.list_jobs():
            if job.finished or (wanted is not None and job.job_id not in wanted):
                continue
            unfinished: tuple[JobStatus, ...] = ("pending", "running", "cancelling")
            if store.set_status(
                job.job_id, "interrupted", error="ended by the fuzz test's cleanup", only_from=unfinished
            ):
                ended.append(job.job_id)
        return ended
    finally:
        store.close()

"""The long reliability run of issue 18: 10,000+ fuzzed requests, 16/64/160-client loads, 30+ ``kill -9``.

Run:  .venv/bin/python benchmarks/reliability_run.py            (the issue's sizes; about 20-30 minutes)
      .venv/bin/python benchmarks/reliability_run.py --quick    (a small version, a few minutes)

Every server is a real ``rag-factory serve`` process on 127.0.0.1, over a registry of ONNX exports of the
bundled all-MiniLM-L6-v2 (as the tests build it). Three parts, each on a fresh copy of that registry:

1. Fuzz: requests for every RPC built from the contract's descriptors (the generators of
   ``tests/sidecar/fuzz_messages.py``, wire mutations included), counted per status code. Expected: no
   INTERNAL or UNKNOWN, the server SERVING and embedding afterwards, ``PRAGMA integrity_check`` ok. A server
   that stops answering is noted and restarted, so the rest is still fuzzed.
2. Loads: N concurrent clients send Embed calls for a while; counts of OK / RESOURCE_EXHAUSTED /
   DEADLINE_EXCEEDED / other, p50/p95 latency of the answers, and the seconds until a 1-text request is
   served once the burst ends (clients gone, their calls cancelled). Expected: RESOURCE_EXHAUSTED rather
   than timeouts, recovery under 5 s.
3. Kills: the cycles of ``tests/sidecar/reliability_kills.py``: registrations, A/B outcomes and a job
   start written at once, ``kill -9`` at a random moment, restart, every acknowledged write looked up.

A markdown summary (for docs/reliability.md) is printed at the end.
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests/ holds the generators

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402
from hypothesis.strategies import SearchStrategy  # noqa: E402

from rag_factory.data import bundled_dataset  # noqa: E402
from rag_factory.data.beir import load_beir  # noqa: E402
from rag_factory.storage import database_path  # noqa: E402
from rag_factory_contract.v1 import embedding_pb2, embedding_pb2_grpc  # noqa: E402
from tests.sidecar.fuzz_client import (  # noqa: E402
    Tally,
    end_unfinished_jobs,
    fuzz_call,
    integrity,
    kill_workers,
    seed_objects,
    server_problem,
)
from tests.sidecar.fuzz_messages import FuzzCase, Known, MessageStrategies, cases, contract_rpcs, option_keys  # noqa: E402
from tests.sidecar.fuzz_sandbox import Sandbox  # noqa: E402
from tests.sidecar.reliability_kills import (  # noqa: E402
    KillRun,
    ServeProcess,
    Workload,
    kill_cycle,
    serve,
    staging_leftovers,
    start_experiment,
    verify_artifacts,
)

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"


# -- set-up ----------------------------------------------------------------------------------------


def export_minilm(workdir: Path) -> Path:
    """The ONNX export of the bundled MiniLM (made once, then reused from ``workdir``)."""
    target = workdir / "onnx" / "minilm-onnx"
    if (target / "model.onnx").is_file():
        return target
    from rag_factory.models.embedding.hub import resolve_model_path
    from rag_factory.models.embedding.onnx_export import export_onnx

    print("exporting the bundled MiniLM to ONNX (once per workdir)...", flush=True)
    return export_onnx(resolve_model_path(MINILM_ID), target)


def build_registry(path: Path, onnx: Path) -> Path:
    """The test registry: minilm-onnx (default, production), -int8, -old (deprecated), and minilm-next."""
    from rag_factory.models.embedding import ModelRegistry
    from tests.conftest import register_minilm_onnx

    if path.exists():
        shutil.rmtree(path)
    registry = ModelRegistry(path)
    try:
        register_minilm_onnx(registry, "minilm-onnx", "1.0.0", onnx, domain="scientific")
        register_minilm_onnx(registry, "minilm-onnx-int8", "1.1.0", onnx, load_config={"quantization": "int8"})
        register_minilm_onnx(registry, "minilm-old", "0.9.0", onnx)
        register_minilm_onnx(registry, "minilm-next", "1.5.0", onnx)
        registry.deprecate("minilm-old", reason="superseded by 1.0.0")
        registry.set_alias("minilm", "production", "minilm-onnx")
    finally:
        registry.close()
    return path


def fresh_registry(base: Path, target: Path) -> Path:
    """A copy of the base registry that one part of the run may change or break."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(base, target)
    return target


# -- 1. fuzz ---------------------------------------------------------------------------------------


@dataclass
class FuzzReport:
    """What the fuzz part found."""

    tally: Tally
    restarts: list[str] = field(default_factory=list)  # "RPC: what was wrong" for each server restart
    health_after: str = ""
    integrity_after: str = ""
    stopped_on_sigterm: bool = False


def run_examples(strategy: SearchStrategy[FuzzCase], count: int, seed: int, body: Callable[[FuzzCase], None]) -> None:
    """Draw ``count`` cases from a Hypothesis strategy (reproducible by ``seed``) and call ``body`` on each."""

    @settings(max_examples=count, deadline=None, database=None, phases=(Phase.generate,),
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @hypothesis_seed(seed)
    @given(strategy)
    def draw(case: FuzzCase) -> None:
        body(case)

    draw()


@dataclass
class FuzzedServer:
    """The server under fuzz, restarted on the same registry when it stops answering."""

    registry: Path
    cache: Path
    root: Path
    server: ServeProcess | None = None
    channel: grpc.Channel | None = None

    def start(self) -> grpc.Channel:
        """Start (or restart) the server; returns a channel to it."""
        if self.server is not None:
            self.close_channel()
            self.server.kill()
            kill_workers(self.registry)
        self.server = serve(self.registry, self.cache, self.root, roots=[self.root.parent])
        self.channel = grpc.insecure_channel(self.server.address)
        return self.channel

    def close_channel(self) -> None:
        """Close the channel to the server."""
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def stop(self) -> bool:
        """Stop the server with SIGTERM; whether it exited cleanly (it is killed otherwise)."""
        self.close_channel()
        return self.server is not None and self.server.stop() == 0


def fuzz(base: Path, root: Path, onnx: Path, cache: Path, requests: int, seed: int, timeout_s: float) -> FuzzReport:
    """Fuzz every RPC until ``requests`` calls were answered; restart the server if it stops answering."""
    target = FuzzedServer(fresh_registry(base, root / "registry"), cache, root)
    sandbox = Sandbox.create(root / "sandbox", extra=[onnx])
    strategies = MessageStrategies(sandbox, Known.for_test_registry(), option_keys())
    report = FuzzReport(Tally())
    rpcs = contract_rpcs()
    channel = target.start()
    for missing in seed_objects(channel, strategies.known, sandbox.tiny_dataset):
        print(f"  could not create {missing}", flush=True)

    def call(case: FuzzCase) -> None:
        fuzz_call(channel, case, strategies.known, report.tally, timeout_s)

    for round_number in range(50):
        if report.tally.total >= requests:
            break
        per_rpc = max(1, math.ceil((requests - report.tally.total) / len(rpcs)))
        for rpc in rpcs:
            started = time.monotonic()
            run_examples(cases(strategies, rpc, wire=True), per_rpc, seed + round_number, call)
            problem = server_problem(channel)
            print(f"  {rpc.id}: {time.monotonic() - started:.1f} s, {report.tally.total} calls so far", flush=True)
            if problem:
                report.restarts.append(f"{rpc.id}: {problem}")
                print(f"  the server stopped serving after {rpc.id} ({problem}); restarting it", flush=True)
                channel = target.start()
    report.health_after = server_problem(channel) or "SERVING, embeds a text"
    report.stopped_on_sigterm = target.stop()
    kill_workers(target.registry)
    end_unfinished_jobs(target.registry)
    report.integrity_after = integrity(database_path(target.registry))
    return report


# -- 2. loads --------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    """One burst of concurrent Embed clients."""

    clients: int
    seconds: float
    codes: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    late_answers: int = 0  # answers that arrived more than 1 s after their deadline
    recovery_s: float = math.inf

    def percentile(self, q: float) -> float:
        """The ``q`` quantile of OK latencies (ms), NaN without any."""
        if not self.latencies_ms:
            return math.nan
        return float(np.quantile(self.latencies_ms, q))


def load(
    address: str, clients: int, seconds: float, timeout_s: float, texts: list[str], backoff_ms: float = 0.0
) -> LoadReport:
    """``clients`` threads, each on its own channel, send Embed calls for ``seconds``; then time recovery.

    A client refused with RESOURCE_EXHAUSTED waits a random 0.5x to 1.5x ``backoff_ms`` before its next
    call, as the refusal asks (0: it retries at once, the most hostile client).
    """
    report = LoadReport(clients, seconds)
    stop = threading.Event()
    in_flight: dict[int, grpc.Future] = {}
    lock = threading.Lock()

    def client(number: int) -> None:
        rng = random.Random(number)
        with grpc.insecure_channel(address) as channel:
            stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
            while not stop.is_set():
                request = embedding_pb2.EmbedRequest(texts=rng.sample(texts, 4))
                started = time.monotonic()
                future = stub.Embed.future(request, timeout=timeout_s)
                in_flight[number] = future
                try:
                    future.result()
                    code = "OK"
                except grpc.FutureCancelledError:
                    return  # cancelled by the end of the burst: not an answer of the server
                except grpc.RpcError as exc:
                    code = exc.code().name
                elapsed = time.monotonic() - started
                if code == "CANCELLED" and stop.is_set():
                    return
                if code == "RESOURCE_EXHAUSTED" and backoff_ms > 0:
                    stop.wait(backoff_ms / 1000 * rng.uniform(0.5, 1.5))
                with lock:
                    report.codes[code] += 1
                    report.late_answers += elapsed > timeout_s + 1
                    if code == "OK":
                        report.latencies_ms.append(elapsed * 1000)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    ended = time.monotonic()
    for future in list(in_flight.values()):
        future.cancel()  # the clients leave: their calls are cancelled, as when a client process exits
    report.recovery_s = _time_to_serve(address, ended)
    for thread in threads:
        thread.join(timeout=timeout_s + 5)
    return report


def _time_to_serve(address: str, since: float, limit_s: float = 300.0) -> float:
    with grpc.insecure_channel(address) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        while time.monotonic() - since < limit_s:
            try:
                stub.Embed(embedding_pb2.EmbedRequest(texts=["ping"]), timeout=5)
                return time.monotonic() - since
            except grpc.RpcError:
                time.sleep(0.05)
    return math.inf


def load_texts() -> list[str]:
    """Abstracts of the bundled SciFact subset, cut to about 100 words."""
    dataset = load_beir(bundled_dataset("scifact_mini"))
    return [" ".join(doc.as_text().split()[:100]) for doc in list(dataset.corpus.values())[:200]]


# -- the summary -----------------------------------------------------------------------------------


def summary(fuzzed: FuzzReport | None, loads: list[LoadReport], kills: KillRun | None, artifacts: list[str]) -> str:
    """The run as markdown."""
    out = ["## Reliability run", ""]
    if fuzzed:
        out += _fuzz_section(fuzzed)
    if loads:
        out += _load_section(loads)
    if kills:
        out += _kill_section(kills, artifacts)
    return "\n".join(out)


def _fuzz_section(report: FuzzReport) -> list[str]:
    codes = report.tally.by_code()
    rpcs = len({rpc for rpc, _ in report.tally.counts})
    by_kind = report.tally.by_kind
    undecodable = by_kind[("INTERNAL", "undecodable")] + by_kind[("UNKNOWN", "undecodable")]
    out = [
        "### Fuzz", "",
        "| requests | RPCs | INTERNAL | UNKNOWN | of which undecodable requests | server restarts | health after "
        "| integrity_check |",
        "|---:|---:|---:|---:|---:|---:|---|---|",
        f"| {report.tally.total} | {rpcs} | {codes['INTERNAL']} | {codes['UNKNOWN']} | {undecodable} "
        f"| {len(report.restarts)} | {report.health_after} | {report.integrity_after} |",
        "", "Answers per status code: " + ", ".join(f"{code} {n}" for code, n in codes.most_common()), "",
        report.tally.markdown(), "",
    ]  # fmt: skip
    out += [f"- restarted after {line}" for line in report.restarts]
    return [*out, f"- SIGTERM stopped the fuzzed server: {report.stopped_on_sigterm}", ""]


def _load_section(loads: list[LoadReport]) -> list[str]:
    out = [
        "### Load", "",
        "| clients | seconds | OK | RESOURCE_EXHAUSTED | DEADLINE_EXCEEDED | other | p50 ms | p95 ms "
        "| answers > 1 s past deadline | 1-text request served after the burst |",
        "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]  # fmt: skip
    for r in loads:
        other = {c: n for c, n in r.codes.items() if c not in ("OK", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED")}
        out.append(
            f"| {r.clients} | {r.seconds:.0f} | {r.codes['OK']} | {r.codes['RESOURCE_EXHAUSTED']} | "
            f"{r.codes['DEADLINE_EXCEEDED']} | {other or '-'} | {r.percentile(0.5):.0f} | {r.percentile(0.95):.0f} "
            f"| {r.late_answers} | {r.recovery_s:.2f} s |"
        )
    return [*out, ""]


def _kill_section(kills: KillRun, artifacts: list[str]) -> list[str]:
    ack = kills.ledger.acknowledged()
    out = [
        "### kill -9", "",
        f"{kills.kills} kills; integrity_check after each: {dict(Counter(kills.integrity))}; "
        f"`.staging-*` folders left: {staging_leftovers(kills.registry)}; the experiment after the last restart: "
        f"{kills.experiment}", "",
        "| writes | sent | acknowledged | acknowledged but lost |", "|---|---:|---:|---:|",
    ]  # fmt: skip
    for kind in ("registrations", "outcomes", "jobs"):
        lost = len(kills.lost.get(kind, {})) + (len(artifacts) if kind == "registrations" else 0)
        out.append(f"| {kind} | {kills.ledger.sent[kind]} | {ack[kind]} | {lost} |")
    out.append(f"| routed requests' arm assignments | - | {ack['routed']} | {len(kills.lost.get('routed', {}))} |")
    problems = [*kills.problems, *artifacts]
    out += ["", f"problems ({len(problems)}):", *(f"- {p}" for p in problems[:20])]
    out.append(f"refused (not acknowledged): { {kind: len(v) for kind, v in kills.ledger.refused.items()} }")
    for kind, answers in kills.ledger.refused.items():
        out += [f"- {kind}: {answer}" for answer in sorted(set(answers))[:5]]
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the parts asked for and print the summary; exit code 1 when an expectation failed."""
    args = _parse(argv)
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    onnx = export_minilm(workdir)
    base = build_registry(workdir / "base-registry", onnx)
    cache = workdir / "cache"
    fuzz_report: FuzzReport | None = None
    loads: list[LoadReport] = []
    kills: KillRun | None = None
    lost_artifacts: list[str] = []
    if args.fuzz_requests:
        print(f"fuzzing {args.fuzz_requests} requests over every RPC...", flush=True)
        fuzz_report = fuzz(base, workdir / "fuzz", onnx, cache, args.fuzz_requests, args.seed, args.call_timeout)
    if args.clients:
        registry = fresh_registry(base, workdir / "load" / "registry")
        server = serve(registry, cache, workdir / "load", roots=[workdir])
        texts = load_texts()
        _time_to_serve(server.address, time.monotonic())  # warm-up: the first request pays for lazy set-up
        try:
            for clients in args.clients:
                print(f"load: {clients} clients for {args.load_seconds:.0f} s...", flush=True)
                loads.append(
                    load(server.address, clients, args.load_seconds, args.load_timeout, texts, args.backoff_ms)
                )
        finally:
            server.stop()
    if args.kills:
        kills, lost_artifacts = _kills(base, workdir / "kills", cache, args.kills, args.seed)
    text = summary(fuzz_report, loads, kills, lost_artifacts)
    print("\n" + text)
    if fuzz_report and args.verbose:
        print("\nmost frequent answers per RPC:")
        for (rpc, code, reason), count in sorted(fuzz_report.tally.reasons.items()):
            print(f"  {rpc} {code} x{count}: {reason}")
    if fuzz_report:
        for (rpc, code, kind), examples in fuzz_report.tally.failures.items():
            print(f"\n{rpc} answered {code} to {kind} requests, e.g.:", *(f"  {e}" for e in examples), sep="\n")
    return 0 if _expectations_met(fuzz_report, loads, kills, lost_artifacts) else 1


def _kills(base: Path, root: Path, cache: Path, count: int, seed: int) -> tuple[KillRun, list[str]]:
    registry = fresh_registry(base, root / "registry")
    run = KillRun(
        registry, cache, root / "serve", roots=[root], work=Workload(f"k{uuid.uuid4().hex[:6]}", root / "artifacts")
    )
    rng = random.Random(seed)
    server = run.start()
    try:
        start_experiment(server.address)
        for number in range(count):
            print(f"kill {number + 1}/{count}...", flush=True)
            server = kill_cycle(run, server, rng, window_s=(1.0, 4.0))
    finally:
        server.stop()
        kill_workers(registry)
    return run, verify_artifacts(registry, run.ledger)


def _expectations_met(
    fuzz_report: FuzzReport | None, loads: list[LoadReport], kills: KillRun | None, lost: list[str]
) -> bool:
    ok = True
    if fuzz_report:
        ok &= fuzz_report.tally.failing() == 0 and not fuzz_report.restarts
        ok &= fuzz_report.integrity_after == "ok" and fuzz_report.health_after.startswith("SERVING")
    for report in loads:
        ok &= report.recovery_s < 5
    if kills:
        ok &= not kills.problems and not lost and set(kills.integrity) <= {"ok"}
    return bool(ok)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a small version (about 3 minutes) to try the run")
    parser.add_argument("--fuzz-requests", type=int, default=None, help="fuzzed requests (default 10,000; 0 skips)")
    parser.add_argument("--clients", type=int, nargs="*", default=None, help="load levels (default 16 64 160)")
    parser.add_argument("--load-seconds", type=float, default=None, help="seconds per load level (default 40)")
    parser.add_argument("--load-timeout", type=float, default=10.0, help="deadline of each load request (s)")
    parser.add_argument(
        "--backoff-ms",
        type=float,
        default=0.0,
        help="load clients wait about this long after RESOURCE_EXHAUSTED (default 0: retry at once)",
    )
    parser.add_argument("--kills", type=int, default=None, help="kill -9 cycles (default 30; 0 skips)")
    parser.add_argument("--call-timeout", type=float, default=4.0, help="deadline of each fuzzed call (s)")
    parser.add_argument("--verbose", action="store_true", help="also list the answers' messages per RPC")
    parser.add_argument("--seed", type=int, default=18, help="seed of the fuzz and the kill moments")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rag-factory-reliability",
                        help="scratch folder inside the temporary folder (the ONNX export is kept there)")  # fmt: skip
    args = parser.parse_args(argv)
    quick = {"fuzz_requests": 600, "clients": [16, 64, 160], "load_seconds": 8.0, "kills": 3}
    full = {"fuzz_requests": 10_000, "clients": [16, 64, 160], "load_seconds": 40.0, "kills": 30}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


if __name__ == "__main__":
    raise SystemExit(main())

"""Experiments survive `kill -9` of the sidecar: counts, split, status and routing are intact after restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rag_factory_contract.v1 import ab_pb2, ab_pb2_grpc, embedding_pb2, embedding_pb2_grpc

pytestmark = pytest.mark.slow


def _serve(registry: Path, cache: Path, tmp_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / f"sidecar-{port}.yaml"
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
                        "ab_testing": {"tick_interval_s": 0.2},
                    }
                },
            }
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "rag_factory.cli", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    with grpc.insecure_channel(address) as channel:
        while True:
            try:
                if health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return process, address
            except grpc.RpcError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "sidecar did not start"
            time.sleep(0.1)


def _snapshot(address: str) -> tuple[ab_pb2.Experiment, dict[str, int]]:
    with grpc.insecure_channel(address) as channel:
        experiment = (
            ab_pb2_grpc.ABTestServiceStub(channel)
            .GetExperiment(ab_pb2.GetExperimentRequest(name="canary"), timeout=10)
            .experiment
        )
        embed = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        variants = {
            f"user-{i}": embed.Embed(
                embedding_pb2.EmbedRequest(texts=["q"], model="minilm", routing_key=f"user-{i}"), timeout=30
            ).served_by.variant
            for i in range(10)
        }
    return experiment, variants


def test_kill_dash_nine_loses_no_acknowledged_outcome(private_registry_path: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    process, address = _serve(private_registry_path, cache, tmp_path)
    try:
        with grpc.insecure_channel(address) as channel:
            ab = ab_pb2_grpc.ABTestServiceStub(channel)
            embed = embedding_pb2_grpc.EmbeddingServiceStub(channel)
            ab.StartExperiment(
                ab_pb2.StartExperimentRequest(
                    name="canary",
                    model_name="minilm",
                    candidate="minilm-onnx-int8",
                    plan=ab_pb2.RampPlan(steps=[0.25, 0.5, 1.0], min_samples_per_step=100_000),
                ),
                timeout=60,
            )
            ab.RampExperiment(ab_pb2.RampExperimentRequest(name="canary"), timeout=10)  # now at 50%
            for i in range(30):
                response = embed.Embed(
                    embedding_pb2.EmbedRequest(texts=["a claim"], model="minilm", routing_key=f"k{i}"), timeout=30
                )
                if i % 3 == 0:
                    ab.RecordOutcome(
                        ab_pb2.RecordOutcomeRequest(request_id=response.request_id, clicked_rank=1), timeout=10
                    )
        before, variants_before = _snapshot(address)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    process, address = _serve(private_registry_path, cache, tmp_path)
    try:
        after, variants_after = _snapshot(address)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    # The snapshot's own 10 requests were recorded too: compare the state before them.
    assert (after.status, after.traffic_split, after.step_index) == (before.status, 0.5, 1)
    assert after.samples_a + after.samples_b == before.samples_a + before.samples_b + 10
    assert before.samples_a + before.samples_b >= 30 + 10  # 30 latencies + 10 engagement outcomes
    assert variants_after == variants_before

"""The sidecar as a process: `rag-factory serve` starts, becomes SERVING, and drains calls on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rag_factory_contract.v1 import embedding_pb2, embedding_pb2_grpc

pytestmark = pytest.mark.slow


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_command_drains_in_flight_calls_on_sigterm(private_registry_path: Path, tmp_path: Path) -> None:
    port = _free_port()
    config = tmp_path / "sidecar.yaml"
    config.write_text(
        "models:\n  embedding:\n    default_model_id: minilm-onnx\n"
        f"    registry_path: {private_registry_path}\n    cache_dir: {tmp_path / 'cache'}\n"
        "batching:\n  max_wait_ms: 0\ngrace_period_s: 60\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rag_factory.cli",
            "serve",
            "--config",
            str(config),
            "--address",
            f"127.0.0.1:{port}",
            "--http-address",
            "off",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            deadline = time.monotonic() + 60
            while True:
                try:
                    status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                except grpc.RpcError:
                    status = None
                if status == health_pb2.HealthCheckResponse.SERVING:
                    break
                assert time.monotonic() < deadline, "never became SERVING"
                time.sleep(0.1)
            stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
            texts = ["a long abstract about cell signalling pathways " * 40] * 64
            result: dict[str, object] = {}

            def slow_call() -> None:
                try:
                    result["response"] = stub.Embed(embedding_pb2.EmbedRequest(texts=texts), timeout=120)
                except grpc.RpcError as exc:
                    result["error"] = exc

            caller = threading.Thread(target=slow_call)
            caller.start()
            time.sleep(0.5)  # the call is now being served
            process.send_signal(signal.SIGTERM)
            caller.join(timeout=120)
        assert "error" not in result, result.get("error")
        assert result["response"].count == 64  # type: ignore[attr-defined]
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    output = process.stdout.read() if process.stdout else ""
    assert f"listening on 127.0.0.1:{port}" in output

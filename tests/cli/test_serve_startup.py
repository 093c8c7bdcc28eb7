"""`rag-factory serve` refuses bad start-up inputs with one line on stderr and a non-zero exit, no traceback.

Issue 19: a bad address and a taken metrics port ended in Python tracebacks, a misspelt config key was
ignored, and a default model that does not resolve left a process that said "listening on" and never became
ready. Each case runs the real entry point in-process (as a subprocess would, minus three seconds of imports
each); one case runs as a real process to pin the exit status and the whole of stderr.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rag_factory.cli import main
from rag_factory.models.embedding import ModelRegistry
from tests.conftest import register_minilm_onnx


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another process (here: a plain listening socket) holds."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def _config(tmp_path: Path, **settings: object) -> Path:
    # Every case binds free ports only (HTTP on port 0), and keeps its registry in its own folder.
    tree: dict[str, object] = {
        "address": "127.0.0.1:0",
        "http_address": "127.0.0.1:0",
        "models": {"embedding": {"registry_path": str(tmp_path / "registry"), "cache_dir": str(tmp_path / "cache")}},
        "load_entry_point_plugins": False,
    }
    tree.update(settings)
    path = tmp_path / "sidecar.yaml"
    path.write_text(json.dumps(tree))  # JSON is YAML
    return path


def _tls_files(tmp_path: Path) -> tuple[str, str]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n")
    return str(cert), str(key)


# Each case: (config and arguments for a tmp folder and a taken port, reason, words the line must hold).
Case = Callable[[Path, int], list[str]]
CASES: list[tuple[str, Case, str, str]] = [
    (
        "address-not-host-port",
        lambda tmp, _: ["--config", str(_config(tmp)), "--address", "notanaddress"],
        "INVALID_CONFIG",
        "address 'notanaddress' is not HOST:PORT (say 127.0.0.1:50051",
    ),
    (
        "port-out-of-range",
        lambda tmp, _: ["--config", str(_config(tmp)), "--address", "127.0.0.1:70000"],
        "INVALID_CONFIG",
        "is not HOST:PORT",
    ),
    (
        "grpc-port-taken",
        lambda tmp, port: ["--config", str(_config(tmp)), "--address", f"127.0.0.1:{port}"],
        "UNAVAILABLE",
        "is already in use by another process",
    ),
    (
        "metrics-port-taken",
        lambda tmp, port: ["--config", str(_config(tmp, metrics_address=f"127.0.0.1:{port}"))],
        "UNAVAILABLE",
        "metrics_address 127.0.0.1:",
    ),
    (
        "http-port-taken",
        lambda tmp, port: ["--config", str(_config(tmp, http_address=f"127.0.0.1:{port}"))],
        "UNAVAILABLE",
        "http_address 127.0.0.1:",
    ),
    (
        "two-addresses-one-port",
        lambda tmp, port: [
            "--config",
            str(_config(tmp, address=f"127.0.0.1:{port}", metrics_address=f"127.0.0.1:{port}")),
        ],
        "INVALID_CONFIG",
        "metrics_address and address both use port",
    ),
    (
        "misspelt-key",
        lambda tmp, _: [
            "--config",
            str(_config(tmp, models={"embedding": {"defualt_model_id": "minilm", "registry_path": str(tmp)}})),
        ],
        "INVALID_CONFIG",
        "unknown key 'models.embedding.defualt_model_id'; did you mean 'models.embedding.default_model_id'?",
    ),
    (
        "misspelt-limit",
        lambda tmp, _: ["--config", str(_config(tmp, limits={"max_batch_text": 8}))],
        "INVALID_CONFIG",
        "unknown key 'limits.max_batch_text'; did you mean 'limits.max_batch_texts'?",
    ),
    (
        "misspelt-batching-key",
        lambda tmp, _: ["--config", str(_config(tmp, batching={"max_wait": 1}))],
        "INVALID_CONFIG",
        "unknown key 'batching.max_wait'; did you mean 'batching.max_wait_ms'?",
    ),
    (
        "tls-cert-missing",
        lambda tmp, _: [
            "--config",
            str(_config(tmp, tls={"cert_file": str(tmp / "nope.pem"), "key_file": _tls_files(tmp)[1]})),
        ],
        "INVALID_CONFIG",
        "tls.cert_file",
    ),
    (
        "tls-key-without-cert",
        lambda tmp, _: ["--config", str(_config(tmp, tls={"key_file": _tls_files(tmp)[1]}))],
        "INVALID_CONFIG",
        "tls.key_file is set but tls.cert_file is not; TLS needs both",
    ),
    (
        "tls-key-unreadable",
        lambda tmp, _: ["--config", str(_config(tmp, tls={"cert_file": _tls_files(tmp)[0], "key_file": str(tmp)}))],
        "INVALID_CONFIG",
        "cannot be read",
    ),
    (
        "registry-path-is-a-file",
        lambda tmp, _: [
            "--config",
            str(_config(tmp, models={"embedding": {"registry_path": str(_tls_files(tmp)[0])}})),
        ],
        "INVALID_CONFIG",
        "is a file, not a folder",
    ),
    (
        "configured-default-not-registered",
        lambda tmp, _: [
            "--config",
            str(
                _config(tmp, models={"embedding": {"default_model_id": "legal@production", "registry_path": str(tmp)}})
            ),
        ],
        "MODEL_NOT_FOUND",
        "models.embedding.default_model_id 'legal@production': model 'legal' is not registered",
    ),
    (
        "model-neither-registered-nor-a-path",
        lambda tmp, _: ["--config", str(_config(tmp)), "--model", "legal"],
        "MODEL_NOT_FOUND",
        "nor is 'legal' a local model directory or a hub id with a local copy",
    ),
    (
        "hub-id-without-a-local-copy",
        lambda tmp, _: ["--config", str(_config(tmp)), "--model", "BAAI/bge-small-en-v1.5"],
        "HUB_MODEL_NOT_AVAILABLE",
        "'BAAI/bge-small-en-v1.5' is neither a local path nor installed locally",
    ),
]


@pytest.mark.parametrize(("make_args", "reason", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_start_is_one_line_and_a_non_zero_exit(
    tmp_path: Path,
    taken_port: int,
    capsys: pytest.CaptureFixture[str],
    make_args: Case,
    reason: str,
    words: str,
) -> None:
    code = main(["serve", *make_args(tmp_path, taken_port)])

    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error ({reason}): ") and words in last, err


@pytest.mark.slow  # loads a (broken) model
def test_a_default_model_that_cannot_load_stops_the_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    damaged = tmp_path / "broken-model"
    damaged.mkdir()
    (damaged / "model.onnx").write_bytes(b"this is not an onnx graph")
    register_minilm_onnx(tmp_path / "registry", "broken-1.0.0", "1.0.0", damaged, model_name="broken")
    config = _config(
        tmp_path, models={"embedding": {"default_model_id": "broken", "registry_path": str(tmp_path / "registry")}}
    )

    assert main(["serve", "--config", str(config)]) != 0

    out, err = capsys.readouterr()
    assert "listening on" not in out and "Traceback" not in err
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith("error (MODEL_LOAD_FAILED): the default model 'broken' cannot serve: ONNX Runtime could not load")
    )


def test_nothing_is_bound_when_the_default_model_does_not_resolve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A configured default is a user's choice: it is not replaced by the bundled model, and the process
    # stops before it binds (nothing announces an address that never serves).
    config = _config(tmp_path, models={"embedding": {"default_model_id": "minilm", "registry_path": str(tmp_path)}})

    assert main(["serve", "--config", str(config)]) != 0

    out, err = capsys.readouterr()
    assert "listening on" not in out
    assert err.strip().splitlines() == [
        f"error (MODEL_NOT_FOUND): models.embedding.default_model_id 'minilm': model 'minilm' is not registered; "
        f"registered: none (registry {str(tmp_path)!r}); register it, or serve a model with --model REF|DIR|HUB_ID"
    ]
    assert ModelRegistry(tmp_path).list_models() == []


@pytest.mark.slow  # a real process: three seconds of imports
def test_the_process_exits_non_zero_with_only_the_error_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rag_factory.cli", "serve", "--address", "notanaddress"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error (INVALID_CONFIG): address 'notanaddress' is not HOST:PORT (say 127.0.0.1:50051; port 0 picks a "
        "free port)"
    ]
    assert not (tmp_path / "model_registry").exists()  # refused before anything was created

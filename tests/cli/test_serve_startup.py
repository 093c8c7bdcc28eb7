"""`rag-factory serve` refuses bad start-up inputs with one line on stderr and a non-zero exit, no traceback.

Issue 19: a bad address and a taken metrics port ended in Python tracebacks, a misspelt config key was
ignored, and a default model that does not resolve left a process that said "listening on" and never became
ready. Each case runs the real entry point in-process (as a subprocess would, minus three seconds of imports
each); one case runs as a real process to pin the exit status and the whole of stderr.
"""

from __future__ import annotations

import json
import resource
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rag_factory.cli import main
from rag_factory.models.embedding import ModelRegistry
from rag_factory.models.embedding.models import EmbeddingModelMetadata
from sidecar.settings import load_settings
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


def _tls_files(
    tmp_path: Path, key_pem: str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
) -> tuple[str, str]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    key.write_text(key_pem)
    return str(cert), str(key)


# Throwaway P-256 keys made with openssl for these tests (pass phrase "test"), in both encrypted forms: OpenSSL
# would stop the start to ask for the pass phrase on the terminal.
ENCRYPTED_PKCS8_KEY = """-----BEGIN ENCRYPTED PRIVATE KEY-----
MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAifYeQgrbgTowICCAAw
DAYIKoZIhvcNAgkFADAdBglghkgBZQMEAQIEEAEFxYSShmp1HG8wgrAYoowEgZBJ
fBaUU9dHBX3DY++h0itp2ly4sH4h6oIjs9oEswsMt0foGAe9EFevAsw8C0mDbhJH
UiGWYagxbj/uQmmyVpogQ3xs+p14Ju6+vh84f3h9aus1GmJDe0iXYbcXVTpE82uZ
oX6z7D8DK0aPSn2ujv2FsCfXcWlmA79IOSTDb7688Stj9QA8kyfCZQGQYNcFOwk=
-----END ENCRYPTED PRIVATE KEY-----
"""
ENCRYPTED_TRADITIONAL_KEY = """-----BEGIN EC PRIVATE KEY-----
Proc-Type: 4,ENCRYPTED
DEK-Info: AES-128-CBC,AC480CA90837252987E7260A6A7B2E9B

jgew8ZgZw2/1LShZFm+l55teQtoy/5h5g80YJ2UsLMv9vav0tRT6s4/Z3ngBu2CV
D5r/IbNJ+pFA9HMUVxhJAk5GlsNvbAmB0c3mTA/N9qBsHC+H859hxkCZm3yhk+9O
c4Gw5EUxryzzW8cUZOvrtuuFBGujom2pfu49ZhRuiG4=
-----END EC PRIVATE KEY-----
"""


def _encrypted_tls(tmp_path: Path, key_pem: str) -> dict[str, str]:
    cert, key = _tls_files(tmp_path, key_pem)
    return {"cert_file": cert, "key_file": key}


# A path whose last name is longer than any file system allows: Path.exists() raises on it (ENAMETOOLONG),
# as it does under a folder the user cannot search (which a test running as root cannot make).
TOO_LONG = "x" * 300


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
        "tls-key-encrypted-pkcs8",
        lambda tmp, _: ["--config", str(_config(tmp, tls=_encrypted_tls(tmp, ENCRYPTED_PKCS8_KEY)))],
        "INVALID_CONFIG",
        "is encrypted with a pass phrase, which the server cannot be given; use an unencrypted key",
    ),
    (
        "tls-key-encrypted-traditional",
        lambda tmp, _: ["--config", str(_config(tmp, tls=_encrypted_tls(tmp, ENCRYPTED_TRADITIONAL_KEY)))],
        "INVALID_CONFIG",
        "is encrypted with a pass phrase",
    ),
    (
        "tls-cert-path-cannot-be-looked-at",
        lambda tmp, _: [
            "--config",
            str(_config(tmp, tls={"cert_file": str(tmp / TOO_LONG), "key_file": _tls_files(tmp)[1]})),
        ],
        "INVALID_CONFIG",
        "cannot be read: [Errno 36] File name too long",
    ),
    (
        "registry-path-cannot-be-looked-at",
        lambda tmp, _: [
            "--config",
            str(_config(tmp, models={"embedding": {"registry_path": str(tmp / TOO_LONG / "registry")}})),
        ],
        "INVALID_CONFIG",
        "models.embedding.registry_path",
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


@pytest.mark.parametrize(
    ("variable", "value", "setting"),
    [
        ("RAG_FACTORY_HTTP_ADDRESS", "[::1]:8080", "http_address"),
        ("RAG_FACTORY_ADDRESS", "[::]:50051", "address"),
        ("RAG_FACTORY_METRICS_ADDRESS", "[::1]", "metrics_address"),  # YAML reads this one as a list
    ],
    ids=["http-ipv6", "grpc-ipv6-any", "bracketed-host-only"],
)
def test_an_environment_value_that_is_not_yaml_is_read_as_text(variable: str, value: str, setting: str) -> None:
    # Values are YAML scalars ("0.2", "true"), but an IPv6 address is not YAML: it used to raise ParserError.
    assert getattr(load_settings(environ={variable: value}), setting) == value


def test_a_bad_ipv6_address_in_the_environment_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_FACTORY_ADDRESS", "[::1]:notaport")

    code = main(["serve", "--config", str(_config(tmp_path))])

    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error (INVALID_CONFIG): address '[::1]:notaport' is not HOST:PORT")


def test_the_bundled_model_is_not_registered_into_a_registry_that_holds_other_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `RAG_FACTORY_REGISTRY_PATH=/prod/registry rag-factory serve`: registering minilm@1.0.0 there, and
    # serving it to every client that names no model, would hand them another vector space unasked.
    # The registration's files are never loaded here: any small directory stands for the model.
    files = tmp_path / "legal-files"
    files.mkdir()
    (files / "model.onnx").write_bytes(b"an ONNX graph")
    with ModelRegistry(tmp_path / "registry") as registry:
        registry.register_model(
            EmbeddingModelMetadata(
                model_id="legal-1.0.0", model_name="legal", version="1.0.0", format="onnx", embedding_dim=768,
                max_seq_length=512,
            ),
            artifact_path=files,
        )  # fmt: skip

    code = main(["serve", "--config", str(_config(tmp_path))])

    out, err = capsys.readouterr()
    assert code == 2 and "listening on" not in out
    assert err.strip().splitlines() == [
        f"error (MODEL_NOT_FOUND): the registry {str(tmp_path / 'registry')!r} holds models but not 'minilm', the "
        "default of models.embedding.default_model_id, and the bundled model is registered only into a new or "
        "empty registry: set models.embedding.default_model_id, or serve one with --model REF "
        "(registered: legal@1.0.0)"
    ]
    with ModelRegistry(tmp_path / "registry") as registry:
        assert [r.model_id for r in registry.list_records()] == ["legal-1.0.0"]


def test_a_full_disk_while_registering_the_bundled_model_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A file-size limit makes writes past 2 MB fail (EFBIG), as a full disk makes them fail (ENOSPC):
    # registering the bundled model copies 91 MB into the registry. SIGXFSZ would kill the process instead.
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, hard))
    try:
        code = main(["serve", "--config", str(_config(tmp_path))])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)

    out, err = capsys.readouterr()
    assert code == 2 and "listening on" not in out and "Traceback" not in err
    registry = str(tmp_path / "registry")
    assert err.strip().splitlines() == [
        f"error (UNAVAILABLE): cannot use the registry at {registry!r}: [Errno 27] File too large"
    ]
    with ModelRegistry(registry) as opened:
        assert opened.list_records() == []

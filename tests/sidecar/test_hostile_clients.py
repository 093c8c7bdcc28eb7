"""A hostile or clumsy client cannot take over or brick the sidecar (issue 18, first items).

Each test is a regression test of a reproduced defect: a client ran a command on the server through
``RegisterModel``'s loading options (item 6), and a ramp plan with an infinite duration was stored as
JSON null, after which every A/B call answered INTERNAL and the server no longer started (item 3).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from rag_factory_contract.v1 import ab_pb2, ab_pb2_grpc, embedding_pb2, embedding_pb2_grpc, registry_pb2_grpc
from rag_factory_contract.v1 import registry_pb2 as pb
from tests.conftest import register_minilm_onnx

pytestmark = pytest.mark.slow


def _register(address: str, model_id: str, artifact: Path, load_config: dict[str, Any]) -> pb.RegisterModelResponse:
    config = struct_pb2.Struct()
    config.update(load_config)
    request = pb.RegisterModelRequest(
        metadata=pb.ModelMetadata(
            model_id=model_id,
            model_name="probe",
            version="1.0.0",
            format=pb.MODEL_FORMAT_PYTORCH,
            embedding_dim=384,
            max_seq_length=256,
        ),
        artifact_path=str(artifact),
        load_config=config,
    )
    with grpc.insecure_channel(address) as channel:
        response: pb.RegisterModelResponse = registry_pb2_grpc.RegistryServiceStub(channel).RegisterModel(
            request, timeout=30
        )
        return response


# Each builds the options a hostile client sends; ``marker`` is a file the command would create.
HOSTILE_OPTIONS: dict[str, tuple[Callable[[Path], dict[str, Any]], str]] = {
    "module-class": (
        lambda marker: {
            "additional_config": {"module_class": "os:system", "module_kwargs": {"command": f"touch {marker}"}}
        },
        "module_class",
    ),
    "trust-remote-code": (lambda marker: {"trust_remote_code": True}, "trust_remote_code"),
    "model-kwargs": (lambda marker: {"additional_config": {"model_kwargs": {"code_revision": "main"}}}, "model_kwargs"),
    "tokenizer-path": (lambda marker: {"additional_config": {"tokenizer_path": "/etc"}}, "tokenizer_path"),
}


@pytest.mark.parametrize("case", list(HOSTILE_OPTIONS))
def test_a_client_cannot_register_loading_options_that_run_code_or_read_files(
    case: str, sidecar_factory: Callable[..., Any], private_registry_path: Path, onnx_export_dir: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    build_options, named = HOSTILE_OPTIONS[case]
    sidecar = sidecar_factory(private_registry_path)
    marker = tmp_path / "command-ran"

    with pytest.raises(grpc.RpcError) as caught:
        _register(sidecar.address, "probe-1", onnx_export_dir, build_options(marker))

    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert named in caught.value.details() and "rag-factory registry register" in caught.value.details()
    assert not marker.exists()
    with grpc.insecure_channel(sidecar.address) as channel, pytest.raises(grpc.RpcError) as lookup:
        registry_pb2_grpc.RegistryServiceStub(channel).GetModel(pb.GetModelRequest(model="probe-1"), timeout=10)
    assert lookup.value.code() == grpc.StatusCode.NOT_FOUND  # nothing was stored for a later load to act on


def test_options_that_only_tune_a_backend_are_still_accepted(
    sidecar_factory: Callable[..., Any], private_registry_path: Path, onnx_export_dir: Path
) -> None:
    sidecar = sidecar_factory(private_registry_path)
    config = struct_pb2.Struct()
    config.update(
        {"pooling_strategy": "cls", "trust_remote_code": False, "additional_config": {"onnx_runtime": "onnxruntime"}}
    )
    metadata = pb.ModelMetadata(
        model_id="minilm-cls", model_name="minilm", version="3.0.0", format=pb.MODEL_FORMAT_ONNX,
        embedding_dim=384, max_seq_length=256,
    )  # fmt: skip
    with grpc.insecure_channel(sidecar.address) as channel:
        registry_pb2_grpc.RegistryServiceStub(channel).RegisterModel(
            pb.RegisterModelRequest(metadata=metadata, artifact_path=str(onnx_export_dir), load_config=config),
            timeout=60,
        )
        response = embedding_pb2_grpc.EmbeddingServiceStub(channel).Embed(
            embedding_pb2.EmbedRequest(texts=["aspirin"], model="minilm@3.0.0"), timeout=60
        )
    assert (response.count, response.served_by.model_id) == (1, "minilm-cls")


@pytest.mark.parametrize(
    ("plan", "threshold", "named"),
    [
        (ab_pb2.RampPlan(steps=[0.5, 1.0], min_step_duration_s=math.inf), 0.0, "min_step_duration_s"),
        (ab_pb2.RampPlan(steps=[0.5, 1.0], min_step_duration_s=1e12), 0.0, "min_step_duration_s"),
        (ab_pb2.RampPlan(steps=[0.5, 1.0], max_error_rate=math.nan), 0.0, "max_error_rate"),
        (ab_pb2.RampPlan(steps=[0.5, 1.0]), math.nan, "statistical_threshold"),
        (ab_pb2.RampPlan(steps=[0.5, 1.0]), math.inf, "statistical_threshold"),
    ],
    ids=["infinite-duration", "duration-over-a-year", "nan-error-rate", "nan-threshold", "infinite-threshold"],
)
def test_non_finite_experiment_settings_are_refused_and_the_server_still_starts(
    plan: ab_pb2.RampPlan, threshold: float, named: str, sidecar_factory: Callable[..., Any],
    private_registry_path: Path, onnx_export_dir: Path,
) -> None:  # fmt: skip
    register_minilm_onnx(private_registry_path, "minilm-next", "1.5.0", onnx_export_dir)
    sidecar = sidecar_factory(private_registry_path)
    request = ab_pb2.StartExperimentRequest(
        name="bad-plan", model_name="minilm", candidate="minilm-next", plan=plan, statistical_threshold=threshold
    )
    with grpc.insecure_channel(sidecar.address) as channel:
        ab = ab_pb2_grpc.ABTestServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            ab.StartExperiment(request, timeout=30)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and named in caught.value.details()
        assert list(ab.ListExperiments(ab_pb2.ListExperimentsRequest(), timeout=10).experiments) == []

    restarted = sidecar_factory(private_registry_path)  # the registry is still one a server can start on
    with grpc.insecure_channel(restarted.address) as channel:
        listed = ab_pb2_grpc.ABTestServiceStub(channel).ListExperiments(ab_pb2.ListExperimentsRequest(), timeout=10)
    assert list(listed.experiments) == []


# -- item 7: RegisterModel.artifact_path copies only regular files inside the import roots ----------


def _onnx_metadata(model_id: str) -> pb.ModelMetadata:
    return pb.ModelMetadata(
        model_id=model_id, model_name="probe", version="1.0.0", format=pb.MODEL_FORMAT_ONNX,
        embedding_dim=384, max_seq_length=256,
    )  # fmt: skip


def _register_path(address: str, artifact: Path | str) -> grpc.RpcError:
    request = pb.RegisterModelRequest(metadata=_onnx_metadata("probe-1"), artifact_path=str(artifact))
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as caught:
        registry_pb2_grpc.RegistryServiceStub(channel).RegisterModel(request, timeout=10)
    return caught.value


def _with_imports(registry_path: Path, roots: list[str], **extra: object) -> dict[str, Any]:
    embedding = {"default_model_id": "minilm-onnx", "registry_path": str(registry_path), "import_roots": roots}
    return {"models": {"embedding": {**embedding, **extra}}}


def test_a_file_outside_the_import_roots_is_refused_even_through_a_link(
    sidecar_factory: Callable[..., Any], private_registry_path: Path, tmp_path: Path
) -> None:
    imports = tmp_path / "imports"
    imports.mkdir()
    (imports / "model").mkdir()
    (imports / "model" / "weights.onnx").symlink_to("/etc/hostname")
    sidecar = sidecar_factory(private_registry_path, **_with_imports(private_registry_path, [str(imports)]))

    for artifact in ("/etc/hostname", "/proc/self/environ", imports / ".." / "..", imports / "model"):
        error = _register_path(sidecar.address, artifact)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, (artifact, error.details())
    assert "/etc" not in _register_path(sidecar.address, imports / "model").details()  # no path is echoed


def test_a_fifo_or_an_oversized_artifact_is_refused_at_once(
    sidecar_factory: Callable[..., Any], private_registry_path: Path, tmp_path: Path
) -> None:
    imports = tmp_path / "imports"
    (imports / "fifo-model").mkdir(parents=True)
    os.mkfifo(imports / "fifo-model" / "model.onnx")  # reading it would block the registration forever
    (imports / "big-model").mkdir()
    (imports / "big-model" / "model.onnx").write_bytes(b"\0" * 2_000_000)
    sidecar = sidecar_factory(
        private_registry_path, **_with_imports(private_registry_path, [str(imports)], max_artifact_gb=0.001)
    )

    (imports / "linked-model").mkdir()
    (imports / "linked-model" / "extra").symlink_to(imports / "fifo-model")  # a FIFO behind a folder link

    fifo = _register_path(sidecar.address, imports / "fifo-model")
    big = _register_path(sidecar.address, imports / "big-model")
    linked = _register_path(sidecar.address, imports / "linked-model")

    assert fifo.code() == grpc.StatusCode.INVALID_ARGUMENT and "not a regular file" in fifo.details()
    assert big.code() == grpc.StatusCode.INVALID_ARGUMENT and "max_artifact_gb" in big.details()
    assert linked.code() == grpc.StatusCode.INVALID_ARGUMENT and "links to a folder" in linked.details()


def test_without_import_roots_no_client_names_a_server_file(
    sidecar_factory: Callable[..., Any], private_registry_path: Path, onnx_export_dir: Path
) -> None:
    sidecar = sidecar_factory(private_registry_path, **_with_imports(private_registry_path, []))

    error = _register_path(sidecar.address, onnx_export_dir)

    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "import_roots" in error.details()

"""Fine-tuning jobs through the sidecar: start, stream events, cancel, refuse bad input, survive restarts."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from rag_factory.data import bundled_dataset
from rag_factory.jobs.job_store import SQLiteJobStore
from rag_factory.models.embedding import ModelRegistry
from rag_factory_contract.v1 import training_pb2, training_pb2_grpc

pytestmark = pytest.mark.slow


def _options(**overrides: Any) -> struct_pb2.Struct:
    # A tiny real run on the bundled subset: short sequences (the corpus is embedded at 64 tokens,
    # not MiniLM's 256), one epoch, no ONNX export. The server chooses where the job writes.
    options = struct_pb2.Struct()
    options.update(
        {
            "epochs": 1,
            "batch_size": 16,
            "train_max_seq_length": 32,
            "max_seq_length": 64,
            "validation_corpus_size": 120,
            "test_split": None,
            "export_onnx": False,
            "early_stopping_patience": 0,
            **overrides,
        }
    )
    return options


@pytest.fixture
def jobs_stub(
    private_registry_path: Path, sidecar_factory: Callable[..., Any]
) -> training_pb2_grpc.TrainingServiceStub:
    sidecar = sidecar_factory(private_registry_path)
    return training_pb2_grpc.TrainingServiceStub(grpc.insecure_channel(sidecar.address))


def test_a_job_streams_its_progress_and_registers_a_candidate(
    jobs_stub: training_pb2_grpc.TrainingServiceStub, private_registry_path: Path, tmp_path: Path
) -> None:
    started = jobs_stub.StartJob(
        training_pb2.StartJobRequest(data_dir=str(bundled_dataset("scifact_mini")), options=_options()),
        timeout=60,
    ).job
    assert started.status in (training_pb2.JOB_STATUS_PENDING, training_pb2.JOB_STATUS_RUNNING)
    events = [r.event for r in jobs_stub.WatchJob(training_pb2.WatchJobRequest(job_id=started.job_id), timeout=600)]
    kinds = [e.kind for e in events]
    assert "step" in kinds and "evaluation" in kinds and kinds[-1] == "done"
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    steps = [e for e in events if e.kind == "step"]
    assert steps[-1].total_steps > 0 and steps[-1].step <= steps[-1].total_steps
    assert any(e.HasField("loss") for e in events)  # the loss appears once the trainer has logged it
    assert any(e.metrics for e in events if e.kind == "evaluation")
    job = jobs_stub.GetJob(training_pb2.GetJobRequest(job_id=started.job_id), timeout=10).job
    assert job.status == training_pb2.JOB_STATUS_SUCCEEDED
    model_id = job.result["model_id"]
    registry = ModelRegistry(private_registry_path)
    assert registry.aliases(registry.get_record(model_id).metadata.model_name)["candidate"] == model_id
    assert registry.ancestors(model_id)  # lineage back to its base


@pytest.mark.parametrize(
    ("request_fields", "code", "fragment"),
    [
        ({"data_dir": "/nonexistent/dataset"}, grpc.StatusCode.PERMISSION_DENIED, "data roots"),
        ({"data_dir": "/etc"}, grpc.StatusCode.PERMISSION_DENIED, "data roots"),  # same answer: nothing leaks
        ({"data_dir": ""}, grpc.StatusCode.INVALID_ARGUMENT, "data_dir is required"),
        ({"strategy": "telepathy"}, grpc.StatusCode.INVALID_ARGUMENT, "telepathy"),
        ({"base_model": "ghost@1.0.0"}, grpc.StatusCode.NOT_FOUND, "not registered"),
        # Issue 18, item 13: a NUL in a path raised ValueError (INTERNAL); a long one was echoed whole.
        ({"data_dir": "/tmp/data\x00set"}, grpc.StatusCode.INVALID_ARGUMENT, "NUL"),
        ({"data_dir": "/tmp/" + "d" * 20_000}, grpc.StatusCode.INVALID_ARGUMENT, "at most 4096 characters"),
    ],
    ids=[
        "outside-the-roots",
        "existing-but-outside",
        "no-dataset",
        "unknown-strategy",
        "unregistered-base",
        "nul-in-path",
        "long-path",
    ],
)
def test_bad_jobs_are_refused_before_anything_starts(
    jobs_stub: training_pb2_grpc.TrainingServiceStub,
    tmp_path: Path,
    request_fields: dict[str, str],
    code: grpc.StatusCode,
    fragment: str,
) -> None:
    fields = {"data_dir": str(bundled_dataset("scifact_mini")), "options": _options(), **request_fields}
    with pytest.raises(grpc.RpcError) as caught:
        jobs_stub.StartJob(training_pb2.StartJobRequest(**fields), timeout=60)  # type: ignore[arg-type]
    assert caught.value.code() == code and fragment in caught.value.details()
    assert len(caught.value.details()) < 500
    assert not jobs_stub.ListJobs(training_pb2.ListJobsRequest(), timeout=10).jobs


@pytest.mark.parametrize("option", ["output_dir", "work_dir", "embedding_cache_dir", "registry_path"])
def test_a_client_cannot_choose_where_a_job_writes(
    jobs_stub: training_pb2_grpc.TrainingServiceStub, tmp_path: Path, option: str
) -> None:
    victim = tmp_path / "precious"
    victim.mkdir()
    (victim / "data.txt").write_text("kept")
    request = training_pb2.StartJobRequest(
        data_dir=str(bundled_dataset("scifact_mini")), options=_options(**{option: str(victim)})
    )

    with pytest.raises(grpc.RpcError) as caught:
        jobs_stub.StartJob(request, timeout=60)

    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED and option in caught.value.details()
    assert (victim / "data.txt").read_text() == "kept"
    assert not jobs_stub.ListJobs(training_pb2.ListJobsRequest(), timeout=10).jobs


def test_a_missing_dataset_inside_a_data_root_is_named(
    jobs_stub: training_pb2_grpc.TrainingServiceStub, tmp_path: Path
) -> None:
    request = training_pb2.StartJobRequest(data_dir=str(tmp_path / "no-such-dataset"), options=_options())
    with pytest.raises(grpc.RpcError) as caught:
        jobs_stub.StartJob(request, timeout=60)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "does not exist" in caught.value.details()


def test_a_cancelled_job_registers_nothing(
    jobs_stub: training_pb2_grpc.TrainingServiceStub, private_registry_path: Path, tmp_path: Path
) -> None:
    job = jobs_stub.StartJob(
        training_pb2.StartJobRequest(data_dir=str(bundled_dataset("scifact_mini")), options=_options(epochs=20)),
        timeout=60,
    ).job
    for response in jobs_stub.WatchJob(training_pb2.WatchJobRequest(job_id=job.job_id), timeout=600):
        if response.event.kind == "step":
            jobs_stub.CancelJob(training_pb2.CancelJobRequest(job_id=job.job_id), timeout=10)
            break
    deadline = time.monotonic() + 300
    while (status := jobs_stub.GetJob(training_pb2.GetJobRequest(job_id=job.job_id), timeout=10).job.status) in (
        training_pb2.JOB_STATUS_RUNNING,
        training_pb2.JOB_STATUS_CANCELLING,
        training_pb2.JOB_STATUS_PENDING,
    ):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert status == training_pb2.JOB_STATUS_CANCELLED
    # The bundled base may have been registered on first use; no fine-tuned version may exist.
    registry = ModelRegistry(private_registry_path)
    assert registry.list_models(tags=["fine-tuned"]) == []
    assert "candidate" not in registry.aliases("all-minilm-l6-v2")
    with pytest.raises(grpc.RpcError) as caught:
        jobs_stub.CancelJob(training_pb2.CancelJobRequest(job_id=job.job_id), timeout=10)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_a_job_running_when_the_sidecar_died_shows_as_interrupted(
    private_registry_path: Path, sidecar_factory: Callable[..., Any]
) -> None:
    store = SQLiteJobStore(private_registry_path / "registry.db")
    orphan = store.create("fine_tune", {"data": "somewhere"})
    store.set_status(orphan.job_id, "running", pid=2**22 + 12345)  # no such process
    sidecar = sidecar_factory(private_registry_path)  # a restart: recovery runs at start-up
    stub = training_pb2_grpc.TrainingServiceStub(grpc.insecure_channel(sidecar.address))
    job = stub.GetJob(training_pb2.GetJobRequest(job_id=orphan.job_id), timeout=10).job
    assert job.status == training_pb2.JOB_STATUS_INTERRUPTED and "restart" in job.error
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetJob(training_pb2.GetJobRequest(job_id="fine_tune-nope"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND

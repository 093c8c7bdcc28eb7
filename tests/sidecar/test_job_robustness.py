"""Jobs over gRPC survive clumsy and hostile clients: dead workers, instant cancels, caps, bad input.

Regression tests of issue 18:

* item 2: a job whose worker was killed, or that was cancelled at once, stayed RUNNING or CANCELLING
  forever, and each WatchJob on it held a server thread forever;
* item 15: jobs had no cap;
* item 13: a dataset line without ``_id``, infinite or absurd option values and an ``after_sequence``
  beyond SQLite's integers answered INTERNAL (or were accepted);
* item 8: ``teacher_model`` loaded any folder the server could read, and said whether it existed.

One sidecar serves the whole module, with the default cap of one running job, so each test ends the
jobs it starts. Workers are killed or cancelled while they start, before they load a model.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from rag_factory.data import bundled_dataset
from rag_factory.data.beir import Document, write_beir
from rag_factory.jobs.job_store import SQLiteJobStore
from rag_factory_contract.v1 import training_pb2, training_pb2_grpc
from tests.conftest import RunningSidecar, start_sidecar

pytestmark = pytest.mark.slow

FINAL = (training_pb2.JOB_STATUS_FAILED, training_pb2.JOB_STATUS_CANCELLED, training_pb2.JOB_STATUS_SUCCEEDED)


@pytest.fixture(scope="module")
def registry(sidecar_registry_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("job-robustness") / "registry"
    shutil.copytree(sidecar_registry_path, target)
    return target


@pytest.fixture(scope="module")
def sidecar(registry: Path, model_cache_dir: Path) -> Iterator[RunningSidecar]:
    running = start_sidecar(registry, model_cache_dir)
    yield running
    running.server.stop(grace=2).wait()
    for job in running.services.jobs.store.active_jobs():  # a failed test may leave a worker behind
        if job.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(job.pid, signal.SIGKILL)
    running.services.close()


@pytest.fixture
def stub(sidecar: RunningSidecar) -> Iterator[training_pb2_grpc.TrainingServiceStub]:
    with grpc.insecure_channel(sidecar.address) as channel:
        yield training_pb2_grpc.TrainingServiceStub(channel)


def _start(stub: training_pb2_grpc.TrainingServiceStub, data_dir: Path | None = None, **options: Any) -> str:
    struct = struct_pb2.Struct()
    struct.update({"test_split": None, "export_onnx": False, **options})
    request = training_pb2.StartJobRequest(data_dir=str(data_dir or bundled_dataset("scifact_mini")), options=struct)
    job_id: str = stub.StartJob(request, timeout=60).job.job_id
    return job_id


def _watch(stub: training_pb2_grpc.TrainingServiceStub, job_id: str, **fields: Any) -> list[training_pb2.JobEvent]:
    request = training_pb2.WatchJobRequest(job_id=job_id, **fields)
    return [response.event for response in stub.WatchJob(request, timeout=20)]


def _job(stub: training_pb2_grpc.TrainingServiceStub, job_id: str) -> training_pb2.Job:
    job: training_pb2.Job = stub.GetJob(training_pb2.GetJobRequest(job_id=job_id), timeout=10).job
    return job


def test_a_job_whose_worker_is_killed_fails_and_every_watch_on_it_ends(
    stub: training_pb2_grpc.TrainingServiceStub, registry: Path
) -> None:
    job_id = _start(stub)
    pid = SQLiteJobStore(registry / "registry.db").get(job_id).pid
    assert pid is not None

    os.kill(pid, signal.SIGKILL)
    with ThreadPoolExecutor(4) as pool:  # each used to hold a server thread for good
        watches = list(pool.map(lambda _: _watch(stub, job_id), range(4)))

    assert all(events and events[-1].kind == "failed" for events in watches)
    job = _job(stub, job_id)
    assert job.status == training_pb2.JOB_STATUS_FAILED and "SIGKILL" in job.error


def test_a_job_cancelled_right_after_it_started_ends_cancelled(stub: training_pb2_grpc.TrainingServiceStub) -> None:
    job_id = _start(stub)

    stub.CancelJob(training_pb2.CancelJobRequest(job_id=job_id), timeout=10)
    _watch(stub, job_id)  # ends once the job has

    assert _job(stub, job_id).status == training_pb2.JOB_STATUS_CANCELLED


def test_a_second_job_is_refused_while_one_runs(stub: training_pb2_grpc.TrainingServiceStub) -> None:
    running = _start(stub)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            _start(stub)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "at most 1 at a time" in caught.value.details()
    finally:
        stub.CancelJob(training_pb2.CancelJobRequest(job_id=running), timeout=10)
        _watch(stub, running)
    assert _job(stub, running).status in FINAL


@pytest.mark.parametrize("after", [2**63 - 1, 2**63, 2**64 - 1], ids=["int64-max", "2^63", "uint64-max"])
def test_watching_after_a_huge_sequence_sends_nothing(
    stub: training_pb2_grpc.TrainingServiceStub, registry: Path, after: int
) -> None:
    store = SQLiteJobStore(registry / "registry.db")
    job = store.create("fine_tune", {})
    store.append_event(job.job_id, {"kind": "done", "message": "finished"})
    store.set_status(job.job_id, "succeeded")

    assert _watch(stub, job.job_id, after_sequence=after) == []
    assert [e.kind for e in _watch(stub, job.job_id, after_sequence=0)] == ["done"]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"learning_rate": math.inf}, "learning_rate"),
        ({"epochs": 1e18}, "epochs"),
        ({"batch_size": 1e12}, "batch_size"),
        ({"search": {"learning_rate": [math.nan]}}, "search.learning_rate"),
        ({"epoch": 1}, "unknown fine-tuning option"),
    ],
    ids=["infinite-learning-rate", "absurd-epochs", "absurd-batch", "nan-in-search", "unknown-option"],
)
def test_bad_option_values_answer_invalid_argument(
    stub: training_pb2_grpc.TrainingServiceStub, options: dict[str, Any], named: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        _start(stub, **options)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and named in caught.value.details()


def test_a_dataset_line_without_an_id_answers_invalid_argument_naming_the_line(
    stub: training_pb2_grpc.TrainingServiceStub, tmp_path: Path
) -> None:
    corpus = {"d1": Document("d1", "", "first"), "d2": Document("d2", "", "second")}
    data = write_beir(tmp_path / "data", corpus, {"q1": "a query"}, {"train": {"q1": {"d1": 1}}})
    with (data / "corpus.jsonl").open("a") as handle:
        handle.write('{"title": "no id", "text": "x"}\n')

    with pytest.raises(grpc.RpcError) as caught:
        _start(stub, data)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "corpus.jsonl line 3 has no '_id'" in caught.value.details()


def test_a_teacher_model_outside_the_roots_is_refused_alike_whether_or_not_it_exists(
    stub: training_pb2_grpc.TrainingServiceStub,
) -> None:
    answers = []
    for teacher in ("/etc", "/no/such/teacher/model"):
        with pytest.raises(grpc.RpcError) as caught:
            _start(stub, strategy="distillation", teacher_model=teacher)
        answers.append((caught.value.code(), caught.value.details()))

    assert answers[0] == answers[1]
    assert answers[0][0] == grpc.StatusCode.PERMISSION_DENIED and "teacher_model" in answers[0][1]

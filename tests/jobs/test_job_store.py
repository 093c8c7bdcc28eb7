"""Jobs live in the registry database: any process can read their state, events and cancellation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rag_factory.errors import FailedPreconditionError, NotFoundError, UnknownFormatError
from rag_factory.jobs.job_manager import JobManager
from rag_factory.jobs.job_store import SQLiteJobStore
from rag_factory.storage import database_path


def test_a_new_job_is_pending_and_survives_reopening_the_database(tmp_path: Path) -> None:
    store = SQLiteJobStore(database_path(tmp_path))
    job = store.create("fine_tune", {"data": "scifact"})
    store.close()

    reopened = SQLiteJobStore(database_path(tmp_path))
    again = reopened.get(job.job_id)

    assert (again.status, again.spec, again.finished) == ("pending", {"data": "scifact"}, False)
    assert [j.job_id for j in reopened.list_jobs()] == [job.job_id]


def test_an_unknown_job_is_not_found_and_the_error_lists_the_known_ones(tmp_path: Path) -> None:
    store = SQLiteJobStore(database_path(tmp_path))
    known = store.create("fine_tune", {})

    with pytest.raises(NotFoundError, match=known.job_id):
        store.get("fine_tune-nosuchjob")


def test_a_finished_job_cannot_be_cancelled_or_moved_back(tmp_path: Path) -> None:
    store = SQLiteJobStore(database_path(tmp_path))
    job = store.create("fine_tune", {})
    store.set_status(job.job_id, "succeeded", result={"model_id": "m-1.1.0"})

    with pytest.raises(FailedPreconditionError, match="already finished"):
        store.request_cancel(job.job_id)
    assert not store.set_status(job.job_id, "running", only_from=("pending",))
    assert store.get(job.job_id).result == {"model_id": "m-1.1.0"}


def test_events_are_numbered_from_one_and_read_after_a_sequence(tmp_path: Path) -> None:
    store = SQLiteJobStore(database_path(tmp_path))
    job = store.create("fine_tune", {})
    numbers = [store.append_event(job.job_id, {"step": step}) for step in range(3)]

    assert numbers == [1, 2, 3]
    assert store.events_after(job.job_id, 1) == [(2, {"step": 1}), (3, {"step": 2})]


def test_recovery_marks_a_job_whose_worker_is_gone_as_interrupted(tmp_path: Path) -> None:
    manager = JobManager(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = manager.store.create("fine_tune", {})
    manager.store.set_status(orphan.job_id, "running", pid=dead.pid)
    done = manager.store.create("fine_tune", {})
    manager.store.set_status(done.job_id, "succeeded")

    assert manager.recover() == [orphan.job_id]
    assert manager.store.get(orphan.job_id).status == "interrupted"
    assert manager.store.get(done.job_id).status == "succeeded"
    manager.close()


def test_an_unknown_job_kind_is_refused_before_anything_is_stored(tmp_path: Path) -> None:
    manager = JobManager(tmp_path)

    with pytest.raises(UnknownFormatError, match="fine_tune"):
        manager.start("distil_everything", {})
    assert manager.store.list_jobs() == []
    manager.close()

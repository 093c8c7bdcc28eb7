"""Every job reaches a final state, whatever happens to its worker; watches end; running jobs are capped.

Issue 18, item 2: a job whose worker died (``kill -9``), or that was cancelled at once, stayed RUNNING or
CANCELLING forever, and every watch on it held a server thread forever. Item 15: jobs had no cap.
Item 13: ``after_sequence`` beyond SQLite's integers raised OverflowError (INTERNAL).

The real worker (``python -m rag_factory.jobs.worker``) runs here; it is killed or cancelled while it
starts, before any model is loaded, so these tests are fast. Where a test needs a worker that hangs or
ignores SIGTERM, ``python`` is a small shell script standing in for a stuck interpreter.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rag_factory.data import bundled_dataset
from rag_factory.errors import FailedPreconditionError, ResourceExhaustedError
from rag_factory.jobs.job_manager import JobManager
from rag_factory.jobs.job_store import MAX_SEQUENCE

pytestmark = pytest.mark.slow  # starts real worker processes


def _spec(tmp_path: Path) -> dict[str, Any]:
    return {"data_dir": str(bundled_dataset("scifact_mini")), "test_split": None, "work_dir": str(tmp_path / "work")}


def _stand_in(tmp_path: Path, script: str) -> str:
    # An "interpreter" that ignores its arguments and runs ``script``: a worker that hangs.
    path = tmp_path / "stuck-python"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[JobManager]:
    jobs = JobManager(tmp_path / "registry")
    yield jobs
    _stop_workers(jobs)


def _stop_workers(jobs: JobManager) -> None:
    for job in jobs.store.active_jobs():
        if job.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(job.pid, signal.SIGKILL)
    jobs.close()


def test_a_job_whose_worker_is_killed_fails_and_says_how(manager: JobManager, tmp_path: Path) -> None:
    job = manager.start("fine_tune", _spec(tmp_path))
    assert job.pid is not None

    os.kill(job.pid, signal.SIGKILL)
    ended = manager.wait(job.job_id, timeout_s=20)

    assert ended.status == "failed"
    assert "killed by signal 9 (SIGKILL)" in ended.error
    assert [event["kind"] for _, event in manager.store.events_after(job.job_id, 0)][-1] == "failed"


def test_a_job_cancelled_right_after_it_started_ends_cancelled(manager: JobManager, tmp_path: Path) -> None:
    job = manager.start("fine_tune", _spec(tmp_path))

    manager.cancel(job.job_id)
    ended = manager.wait(job.job_id, timeout_s=30)

    assert ended.status == "cancelled"
    with pytest.raises(FailedPreconditionError):
        manager.cancel(job.job_id)


def test_a_job_cancelled_before_its_worker_ran_is_cancelled_by_the_worker(tmp_path: Path) -> None:
    # The cancel lands while the job is still pending and no signal reaches the worker: it must see it.
    manager = JobManager(tmp_path / "registry")
    job = manager.store.create("fine_tune", _spec(tmp_path))
    manager.store.request_cancel(job.job_id)

    worker = [sys.executable, "-m", "rag_factory.jobs.worker", job.job_id, str(tmp_path / "registry")]
    assert subprocess.run(worker, timeout=60).returncode == 0
    assert manager.store.get(job.job_id).status == "cancelled"
    manager.close()


def test_a_worker_that_ignores_its_cancel_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    stuck = _stand_in(tmp_path, "trap '' TERM\nexec sleep 60")
    manager = JobManager(tmp_path / "registry", python=stuck, cancel_grace_s=0.5)
    job = manager.start("fine_tune", _spec(tmp_path))
    try:
        manager.cancel(job.job_id)
        assert manager.wait(job.job_id, timeout_s=0.3).status == "cancelling"  # SIGTERM alone did nothing

        ended = manager.wait(job.job_id, timeout_s=10)

        assert ended.status == "cancelled" and "SIGKILL" in ended.error
    finally:
        _stop_workers(manager)


def test_a_watch_ends_when_its_caller_stops_wanting_it(tmp_path: Path) -> None:
    manager = JobManager(tmp_path / "registry", python=_stand_in(tmp_path, "exec sleep 60"))
    job = manager.start("fine_tune", _spec(tmp_path))
    try:
        give_up_at = time.monotonic() + 0.5
        started = time.monotonic()

        events = list(manager.watch(job.job_id, keep_going=lambda: time.monotonic() < give_up_at))

        assert events == [] and time.monotonic() - started < 2
        assert manager.get(job.job_id).status == "pending"  # the job itself goes on
    finally:
        _stop_workers(manager)


def test_more_jobs_than_the_cap_are_refused_until_one_ends(tmp_path: Path) -> None:
    manager = JobManager(tmp_path / "registry", python=_stand_in(tmp_path, "exec sleep 60"), max_concurrent_jobs=1)
    first = manager.start("fine_tune", _spec(tmp_path))
    try:
        with pytest.raises(ResourceExhaustedError, match="at most 1 at a time"):
            manager.start("fine_tune", _spec(tmp_path))
        assert [j.job_id for j in manager.list_jobs()] == [first.job_id]  # nothing stored for the refused one

        manager.cancel(first.job_id)  # SIGTERM ends the stand-in; its job becomes cancelled
        assert manager.wait(first.job_id, timeout_s=10).status == "cancelled"

        assert manager.start("fine_tune", _spec(tmp_path)).status == "pending"
    finally:
        _stop_workers(manager)


@pytest.mark.parametrize("after", [MAX_SEQUENCE, MAX_SEQUENCE + 1, 2**64 - 1], ids=["int64-max", "2^63", "uint64-max"])
def test_events_after_a_huge_sequence_are_none(tmp_path: Path, after: int) -> None:
    manager = JobManager(tmp_path / "registry")
    job = manager.store.create("fine_tune", {})
    manager.store.append_event(job.job_id, {"kind": "step"})

    assert manager.store.events_after(job.job_id, after) == []
    manager.close()

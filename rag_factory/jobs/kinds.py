"""Job kinds: how to validate a spec before anything starts, and how a worker runs it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JobEventSink = Callable[[dict[str, Any]], None]
"""Receives a job's events as JSON-ready dicts, for the job store (``TrainingEventSink`` takes them typed)."""


@dataclass(frozen=True)
class JobKind:
    """Validation (in the caller's process) and execution (in the worker)."""

    validate: Callable[[dict[str, Any], Path], None]
    run: Callable[[dict[str, Any], Path, JobEventSink, threading.Event], dict[str, Any]]


def _validate_fine_tune(spec: dict[str, Any], registry_path: Path) -> None:
    from rag_factory.jobs.fine_tune_job import validate_job

    validate_job(spec, registry_path)


def _run_fine_tune(
    spec: dict[str, Any], registry_path: Path, emit: JobEventSink, cancel: threading.Event
) -> dict[str, Any]:
    from rag_factory.jobs.fine_tune_job import run_job

    return run_job(spec, registry_path, emit, cancel)


JOB_KINDS: dict[str, JobKind] = {"fine_tune": JobKind(_validate_fine_tune, _run_fine_tune)}

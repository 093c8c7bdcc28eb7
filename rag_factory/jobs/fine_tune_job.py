"""The ``fine_tune`` job kind: a FineTuneConfig as JSON, validated up front, run in a worker.

A job's spec comes from a network client, so :func:`job_config` checks more than the config's own
fields do: option names must be FineTuneConfig fields (a typo is not silently ignored, and nothing
unbounded is stored), and strings are short enough to quote in an error and free of NUL characters
(which no file system path may hold).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rag_factory.errors import (
    InvalidArgumentError,
    ModelNotFoundError,
    describe_choices,
    describe_validation_error,
    quoted,
)
from rag_factory.jobs.kinds import JobEventSink
from rag_factory.models.embedding.hub import DEFAULT_BASE_MODEL
from rag_factory.models.embedding.records import ModelRecord
from rag_factory.models.embedding.registry import ModelRegistry
from rag_factory.models.training.config import FineTuneConfig

# Options that name a model, strategy or split: short identifiers, quoted whole in error messages.
NAME_OPTIONS = ("base_model", "teacher_model", "model_name", "strategy", "train_split", "test_split", "data_format")
MAX_NAME_CHARS = 200
MAX_PATH_CHARS = 4096  # PATH_MAX on Linux
MAX_ITEMS = 64


def _check_strings(spec: dict[str, Any]) -> None:
    unknown = sorted(set(spec) - set(FineTuneConfig.model_fields) - {"data_dir"})
    if unknown:
        raise InvalidArgumentError(
            f"unknown fine-tuning option(s) {describe_choices([quoted(str(k), 40) for k in unknown], 5)}; "
            "options are the fields of rag_factory.models.training.FineTuneConfig"
        )
    for key, value in spec.items():
        limit = MAX_NAME_CHARS if key in NAME_OPTIONS else MAX_PATH_CHARS
        if not _bounded(value, limit):
            raise InvalidArgumentError(
                f"option {key}: strings of at most {limit} characters without NUL, lists of at most {MAX_ITEMS} items"
            )


def _bounded(value: Any, limit: int) -> bool:
    # Nested values too (tags, the search space): everything in a spec is stored and shown back.
    if isinstance(value, str):
        return len(value) <= limit and "\x00" not in value
    if isinstance(value, list):
        return len(value) <= MAX_ITEMS and all(_bounded(item, limit) for item in value)
    if isinstance(value, dict):
        return len(value) <= MAX_ITEMS and all(_bounded(k, limit) and _bounded(v, limit) for k, v in value.items())
    return True


def job_config(spec: dict[str, Any], registry_path: Path) -> FineTuneConfig:
    """The run's config: the spec's fields, registering results in ``registry_path``.

    Raises:
        InvalidArgumentError: An unknown option, a string too long or holding NUL, or a field that is
            missing or invalid (out of range, not finite).
    """
    _check_strings(spec)
    fields = dict(spec)
    if "data_dir" in fields:
        fields["data"] = fields.pop("data_dir")
    fields["registry_path"] = str(registry_path)
    try:
        return FineTuneConfig.model_validate(fields)
    except ValidationError as exc:
        raise InvalidArgumentError(f"invalid fine-tuning job: {describe_validation_error(exc)}") from exc


def validate_job(spec: dict[str, Any], registry_path: Path) -> None:
    """Check everything a run checks before training, in the caller's process (nothing starts if bad).

    Raises:
        InvalidArgumentError, DatasetError, UnknownFormatError, ModelNotFoundError: Bad input.
    """
    from rag_factory.models.training.preparation import prepare

    config = job_config(spec, registry_path)
    with ModelRegistry(registry_path) as registry:
        try:
            registry.resolve(config.base_model)
        except ModelNotFoundError:
            # The bundled default base is registered on first use; any other base must exist already.
            if config.base_model != DEFAULT_BASE_MODEL:
                raise
            prepare(config, None)
            return
        prepare(config, registry)


def register_base(registry: ModelRegistry, base: str) -> ModelRecord:
    """The registered record of ``base``, registering it first if needed; safe for concurrent jobs.

    The bundled base is the registration ``rag-factory serve`` made on its first start (``minilm@1.0.0``),
    or made here under that name, so a job's result descends from the model the server serves. Jobs
    started together each find the base unregistered and each register it; the losers of that race take
    the winner's record (``ensure_base_registered`` handles DUPLICATE_VERSION).

    Raises:
        ModelNotFoundError: ``base`` is neither registered nor a local model.
        DuplicateVersionError: The name and version were taken at the same moment by other files.
    """
    from rag_factory.models.training.registration import ensure_base_registered

    return ensure_base_registered(registry, base, created_by="rag-factory job")


def run_job(spec: dict[str, Any], registry_path: Path, emit: JobEventSink, cancel: threading.Event) -> dict[str, Any]:
    """Fine-tune, export and register; returns a JSON summary of the result."""
    from rag_factory.jobs.publishing import fine_tune_and_publish

    config = job_config(spec, registry_path)
    if config.base_model == DEFAULT_BASE_MODEL:
        # As the CLI does: the bundled base is registered on first use, so the result has lineage.
        with ModelRegistry(registry_path) as registry:
            base_id = register_base(registry, config.base_model).model_id
        config = config.model_copy(update={"base_model": base_id})
    result = fine_tune_and_publish(config, on_event=lambda event: emit(event.model_dump(mode="json")), cancel=cancel)
    return {
        "model_id": result.model_id,
        "model_ref": result.model_ref,
        "output_dir": str(result.output_dir),
        "strategy": result.strategy,
        "hyperparameters": result.hyperparameters,
        "validation": result.validation,
        "base_validation": result.base_validation,
        "test": result.test,
        "base_test": result.base_test,
        "test_p_value": result.comparison.t_pvalue if result.comparison else None,
        "epochs_trained": result.epochs_trained,
        "averaged_epochs": list(result.averaged_epochs),
        "total_seconds": result.total_seconds,
    }

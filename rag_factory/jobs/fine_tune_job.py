"""The ``fine_tune`` job kind: a FineTuneConfig as JSON, validated up front, run in a worker."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rag_factory.errors import InvalidArgumentError, ModelNotFoundError, describe_validation_error
from rag_factory.jobs.kinds import JobEventSink
from rag_factory.models.embedding.hub import DEFAULT_BASE_MODEL
from rag_factory.models.embedding.registry import ModelRegistry
from rag_factory.models.training.config import FineTuneConfig


def job_config(spec: dict[str, Any], registry_path: Path) -> FineTuneConfig:
    """The run's config: the spec's fields, registering results in ``registry_path``.

    Raises:
        InvalidArgumentError: A field is missing or invalid.
    """
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


def run_job(spec: dict[str, Any], registry_path: Path, emit: JobEventSink, cancel: threading.Event) -> dict[str, Any]:
    """Fine-tune, export and register; returns a JSON summary of the result."""
    from rag_factory.jobs.publishing import fine_tune_and_publish
    from rag_factory.models.training.registration import ensure_base_registered

    config = job_config(spec, registry_path)
    if config.base_model == DEFAULT_BASE_MODEL:
        # As the CLI does: the bundled base is registered on first use, so the result has lineage.
        with ModelRegistry(registry_path) as registry:
            base_id = ensure_base_registered(registry, config.base_model).model_id
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

"""Register a fine-tuned model as a new minor version with lineage, dataset, metrics, size and latency."""

from __future__ import annotations

import json
import re

from rag_factory.errors import InvalidArgumentError, ModelNotFoundError
from rag_factory.models.embedding.hub import resolve_model_path
from rag_factory.models.embedding.model_files import model_max_seq_length, size_on_disk
from rag_factory.models.embedding.models import EmbeddingModelMetadata
from rag_factory.models.embedding.records import ModelRecord
from rag_factory.models.embedding.registry import ModelRegistry
from rag_factory.models.training.result import FineTuneResult, RunInputs

TRAINING_RECORD = "rag_factory_training.json"
CANDIDATE = "candidate"


def ensure_base_registered(registry: ModelRegistry, base: str) -> ModelRecord:
    """The record ``base`` names in ``registry``; a local path or packaged hub id is registered first.

    A hub id such as ``sentence-transformers/all-MiniLM-L6-v2`` becomes ``all-minilm-l6-v2@1.0.0``
    (format sentence_transformers, ``base_model`` = the hub id), so fine-tuned versions have lineage.

    Raises:
        ModelNotFoundError: Not registered, and not a local path or packaged id either.
    """
    try:
        return registry.resolve(base)
    except ModelNotFoundError:
        pass
    path = resolve_model_path(base)
    name = re.sub(r"[^a-z0-9._-]+", "-", base.rstrip("/").split("/")[-1].lower()).strip("-") or "base"
    try:
        return registry.resolve(name)
    except ModelNotFoundError:
        pass
    from sentence_transformers import SentenceTransformer

    dim = SentenceTransformer(str(path), device="cpu", local_files_only=True).get_embedding_dimension()
    metadata = EmbeddingModelMetadata(
        model_id=f"{name}-1.0.0",
        model_name=name,
        version="1.0.0",
        format="sentence_transformers",
        embedding_dim=int(dim or 384),
        max_seq_length=model_max_seq_length(path),
        base_model=base,
        description=f"base model {base}, registered for fine-tuning lineage",
        created_by="rag-factory train",
        tags=["base"],
    )
    return registry.register_model(metadata, artifact_path=path, metrics={"model_size_mb": size_on_disk(path) / 1e6})


def _metrics(result: FineTuneResult) -> dict[str, float]:
    metrics: dict[str, float] = {"model_size_mb": result.model_size_mb, "avg_inference_time_ms": result.latency_ms}
    for prefix, values in (
        ("validation", result.validation),
        ("base_validation", result.base_validation),
        ("test", result.test or {}),
        ("base_test", result.base_test or {}),
    ):
        metrics.update({f"{prefix}_{k}": float(v) for k, v in values.items() if isinstance(v, int | float)})
    if result.test is not None:
        metrics["ndcg_at_10"] = result.test["ndcg@10"]
        metrics["mrr_score"] = result.test["mrr@10"]
    elif "ndcg@10" in result.validation:
        metrics["ndcg_at_10"] = result.validation["ndcg@10"]
    if result.comparison is not None:
        metrics["test_ndcg@10_p_value"] = result.comparison.t_pvalue
        metrics["test_ndcg@10_wilcoxon_p_value"] = result.comparison.wilcoxon_pvalue
    metrics.update({f"hp_{k}": float(v) for k, v in result.hyperparameters.items()})
    metrics.update({"epochs_trained": result.epochs_trained, "train_seconds": result.train_seconds})
    if result.averaged_epochs:
        metrics["checkpoints_averaged"] = float(len(result.averaged_epochs))
    return metrics


def _inputs(result: FineTuneResult) -> RunInputs:
    if result.inputs is None:
        raise InvalidArgumentError("the result does not say what it was trained on; register what fine_tune returns")
    return result.inputs


def write_training_record(result: FineTuneResult) -> None:
    """``rag_factory_training.json`` inside the artifact: dataset name and hash, strategy, hyperparameters, metrics.

    Raises:
        InvalidArgumentError: ``result.inputs`` is missing (a result not made by ``fine_tune``).
    """
    run = _inputs(result)
    payload = {
        "dataset": {"name": run.dataset_name, "sha256": run.dataset_sha256, "path": str(run.config.data),
                    "train_queries": run.train_queries, "validation_queries": run.validation_queries},
        "base_model": run.base_record.model_id if run.base_record else str(run.base_path),
        "strategy": result.strategy,
        "hyperparameters": result.hyperparameters,
        "config": run.config.model_dump(mode="json"),
        "metrics": _metrics(result),
        "comparison": result.comparison.model_dump() if result.comparison else None,
        "search_trials": result.search_trials,
        "averaged_epochs": list(result.averaged_epochs),
    }  # fmt: skip
    path = result.output_dir / TRAINING_RECORD
    path.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")


def register_fine_tuned(registry: ModelRegistry, result: FineTuneResult) -> ModelRecord:
    """Register ``result.output_dir`` as the next minor version and point the ``candidate`` alias at it.

    The name is ``config.model_name`` or the base's name; ``base_model`` is the base's id (a lineage
    edge); strategy, dataset name and hash and the hyperparameters go into tags, the description and
    ``rag_factory_training.json``; validation and test metrics, size and latency into the metrics.

    Args:
        registry: Where to register; the run's base must be registered there.
        result: What ``fine_tune`` returned (its ``inputs`` name the config, data and base).

    Raises:
        ModelNotFoundError: The run's base was not a registered model.
        InvalidArgumentError: ``result.inputs`` is missing (a result not made by ``fine_tune``).
    """
    run = _inputs(result)
    base = run.base_record
    if base is None:
        raise ModelNotFoundError("registration needs a registered base model")
    write_training_record(result)
    name = run.config.model_name or base.metadata.model_name
    version = registry.next_version(name, "minor")
    short_hash = run.dataset_sha256[:12]
    metadata = EmbeddingModelMetadata(
        model_id=f"{name}-{version}",
        model_name=name,
        version=version,
        format="sentence_transformers",
        embedding_dim=base.metadata.embedding_dim,
        max_seq_length=int(result.hyperparameters["max_seq_length"]),
        base_model=base.model_id,
        fine_tuned_on=run.dataset_name,
        domain=base.metadata.domain,
        description=(
            f"{base.ref} fine-tuned on {run.dataset_name} (sha256 {short_hash}) with strategy {result.strategy}; "
            + ", ".join(f"{k}={v:g}" for k, v in result.hyperparameters.items())
        ),
        created_by="rag-factory train",
        tags=sorted({"fine-tuned", f"strategy:{result.strategy}", f"dataset:{run.dataset_name}",
                     f"dataset-sha256:{short_hash}", *run.config.tags}),
    )  # fmt: skip
    # One transaction: a cancel or crash never leaves the version registered without its alias.
    return registry.register_model(
        metadata, artifact_path=result.output_dir, metrics=_metrics(result), aliases=(CANDIDATE,)
    )

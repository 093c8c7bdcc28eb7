"""Register models with lineage: a base model once (the lineage root), a fine-tuned one as its next minor version."""

from __future__ import annotations

import json
import re
from pathlib import Path

from rag_factory.errors import (
    AlreadyExistsError,
    DuplicateVersionError,
    InvalidArgumentError,
    ModelLoadError,
    ModelNotFoundError,
)
from rag_factory.models.embedding import artifacts
from rag_factory.models.embedding.hub import DEFAULT_BASE_MODEL, resolve_model_path
from rag_factory.models.embedding.model_files import declared_embedding_dim, model_max_seq_length, size_on_disk
from rag_factory.models.embedding.models import EmbeddingModelMetadata
from rag_factory.models.embedding.names import DEFAULT_REFERENCE
from rag_factory.models.embedding.records import ModelRecord
from rag_factory.models.embedding.registry import ModelRegistry
from rag_factory.models.training.result import FineTuneResult, RunInputs

TRAINING_RECORD = "rag_factory_training.json"
CANDIDATE = "candidate"
PRODUCTION = "production"
BASE_TAG = "base"
# The registry name of a packaged model's base registration. The bundled default is "minilm", the
# reference the sidecar serves when nothing is configured (models.embedding.default_model_id): the model
# `rag-factory serve` registers on first start and the base `rag-factory train` fine-tunes are then one
# registration, minilm@1.0.0, and fine-tunes become minilm@1.1.0, 1.2.0, ... under it.
# Keys are lower case: the hub id and its short name (both resolve to the packaged copy).
BASE_NAMES: dict[str, str] = {DEFAULT_BASE_MODEL.lower(): "minilm", DEFAULT_BASE_MODEL.split("/")[1].lower(): "minilm"}


def artifact_digest(path: Path) -> str:
    """The digest ``ArtifactStore.put`` gives ``path``, computed by hashing alone (nothing is copied).

    Raises:
        InvalidArgumentError: ``path`` holds a symlinked directory (the store refuses those too).
    """
    if path.is_file():
        return artifacts.sha256_file(path)
    files = [artifacts._entry(rel, artifacts.sha256_file(path / rel), 0) for rel in artifacts._relative_files(path)]
    return artifacts._manifest_digest({"kind": "directory", "files": files})


def find_base_registration(registry: ModelRegistry, base: str, path: Path) -> ModelRecord | None:
    """The usable sentence-transformers registration of ``base`` (local copy at ``path``), if there is one.

    A registration recorded as a base of this hub id counts (found without hashing); otherwise any
    registration storing the same files, whatever its name (the demo's ``minilm-st-1.0.0``, an older
    ``all-minilm-l6-v2@1.0.0``). Registrations tagged ``base`` win, then the earliest.
    """
    records = [
        r for r in registry.list_records(format="sentence_transformers") if not r.deprecated and not r.load_config
    ]
    named = []
    if not _is_local(base):  # a directory's files may have changed since: only its digest identifies it
        named = [r for r in records if BASE_TAG in r.metadata.tags and (r.metadata.base_model or "") == base]
    if not named and records:
        digest = artifact_digest(path)
        named = [r for r in records if r.artifact_sha256 == digest]
    named.sort(key=lambda r: (BASE_TAG not in r.metadata.tags, r.registered_at))
    return named[0] if named else None


def _is_local(base: str) -> bool:
    return Path(base).expanduser().exists()


def _base_name(registry: ModelRegistry, base: str, path: Path) -> str:
    """A free name for a new base: the packaged one, else one from the hub id or directory, else that plus a digest.

    A base is never added as a version to an existing family: ``serve --model ./other/model`` must not
    become ``model@1.1.0`` of someone's unrelated ``model``, which clients asking for ``model`` would then
    get, with vectors of another space. When both plain names are taken, the name is ``<slug>-<first 8 hex
    of the files' digest>``: the same files always get the same name, so a restart finds them again.

    Raises:
        AlreadyExistsError: That name is taken too (by other files, or by a deprecated registration of
            these): the caller registers the model under a name of their choosing instead.
    """
    stem = path.name if _is_local(base) else base.rstrip("/").split("/")[-1]
    slug = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._") or "base"
    slug = slug if slug != DEFAULT_REFERENCE else "default-model"  # "default" names the server's default model
    # The id, "<name>-<digest>-1.0.0", must fit the 128 characters an id may have.
    slug = slug[:100].rstrip("-._")
    candidates = [name for name in (BASE_NAMES.get(base.lower()), slug) if name]
    free = next((name for name in candidates if not registry.versions(name)), None)
    if free is not None:
        return free
    digested = f"{slug}-{artifact_digest(path)[:8]}"
    if registry.versions(digested):
        raise AlreadyExistsError(
            f"cannot register {base[:200]!r} as a base model: the names {', '.join(map(repr, candidates))} and "
            f"{digested!r} are taken by other registrations; register it under a name of your own "
            "(rag-factory registry register --name NAME ...) and serve that reference",
            model=base[:200],
        )
    return digested


def _embedding_dim(path: Path) -> int:
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        # Said without loading torch: neither a sentence-transformers nor a transformers directory.
        raise ModelLoadError(
            f"{str(path)!r} is not a sentence-transformers model: it has neither modules.json nor config.json"
        )
    declared = declared_embedding_dim(path, "sentence_transformers")  # read from config files: no load
    if declared is not None:
        return declared
    from sentence_transformers import SentenceTransformer

    try:
        dim = SentenceTransformer(str(path), device="cpu", local_files_only=True).get_embedding_dimension()
    except Exception as exc:  # any failure to load means the same thing here: not a usable model
        raise ModelLoadError(f"{str(path)!r} is not a sentence-transformers model: {exc}"[:500]) from exc
    if not dim:
        raise ModelLoadError(f"{str(path)!r} does not say the length of its vectors")
    return int(dim)


def ensure_base_registered(registry: ModelRegistry, base: str, *, created_by: str = "rag-factory train") -> ModelRecord:
    """The record ``base`` names in ``registry``; a local model or packaged hub id is registered first.

    ``base`` is looked up as a registry reference first. Otherwise it must be a local directory or a hub
    id with a local copy (``resolve_model_path``), and an existing registration of those files is reused
    (see :func:`find_base_registration`), so restarting or training again never registers twice. A new
    registration is ``<name>@1.0.0`` (format sentence_transformers, ``base_model`` = ``base``, tag
    ``base``), with the ``production`` alias, so a bare ``<name>`` keeps naming it until a fine-tune
    is promoted; the bundled default's name is ``minilm`` (:data:`BASE_NAMES`). A base never joins an
    existing family: when the packaged name and the one from the hub id or directory are both taken, it
    is ``<name>-<8 hex of its digest>@1.0.0`` (see :func:`_base_name`).
    Processes that register the same base at once are safe: the losers of the race take the winner's record.

    Args:
        registry: Where to look and register.
        base: A registry reference, a local model directory, or a hub id with a local copy.
        created_by: Recorded on a new registration.

    Raises:
        ModelNotFoundError: Not registered, and not a local path or packaged id either.
        HubModelNotAvailableError: A hub id with no local copy.
        ModelLoadError: The directory is not a sentence-transformers model.
        AlreadyExistsError: Every name it could take is taken by other registrations.
        DuplicateVersionError: The name and version were taken at the same moment by other files.
    """
    try:
        return registry.resolve(base)
    except ModelNotFoundError:
        pass
    path = resolve_model_path(base)
    existing = find_base_registration(registry, base, path)
    if existing is not None:
        return existing
    name = _base_name(registry, base, path)
    version = registry.next_version(name, "minor")
    metadata = EmbeddingModelMetadata(
        model_id=f"{name}-{version}",
        model_name=name,
        version=version,
        format="sentence_transformers",
        embedding_dim=_embedding_dim(path),
        max_seq_length=model_max_seq_length(path),
        base_model=str(path) if _is_local(base) else base,
        description=f"base model {base}, registered for fine-tuning lineage",
        created_by=created_by,
        tags=[BASE_TAG],
    )
    try:
        return registry.register_model(
            metadata,
            artifact_path=path,
            metrics={"model_size_mb": size_on_disk(path) / 1e6},
            aliases=(PRODUCTION,) if version == "1.0.0" else (),
        )
    except DuplicateVersionError:
        # Another process registered it between our lookup and our insert: take its record.
        winner = find_base_registration(registry, base, path)
        if winner is None:
            raise
        return winner


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

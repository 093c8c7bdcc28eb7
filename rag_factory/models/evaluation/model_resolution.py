"""Turn what a user names (registered id, alias, path, hub id) into a loaded model on its fastest backend."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rag_factory.errors import ModelNotFoundError, NotFoundError, UnknownFormatError
from rag_factory.models.embedding.backends.base import EmbeddingModel
from rag_factory.models.embedding.hub import resolve_model_path
from rag_factory.models.embedding.loader import CustomModelLoader
from rag_factory.models.embedding.models import ModelFormat
from rag_factory.models.embedding.registry import ModelRegistry

BackendChoice = Literal["fastest", "native", "int8"]
"""``fastest``: int8 ONNX where the model has it, else its own backend; ``native``: the backend it was
registered (or saved) with; ``int8``: int8 always: the model's own int8 graph, else an exported and quantised
copy (made once, in the loader's cache directory)."""
BACKEND_CHOICES: tuple[BackendChoice, ...] = ("fastest", "native", "int8")

_INT8_NAMES = ("model_int8.onnx", "model_qint8_avx512_vnni.onnx", "model_qint8_avx2.onnx", "model_quint8_avx2.onnx")
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class ResolvedModel:
    """A loaded model and what identifies it in reports, history and caches."""

    model: EmbeddingModel
    model_id: str  # registry id, or the resolved path for an unregistered model
    model_name: str  # registry name, or the directory name
    version: str  # semver for registered models, "" for paths
    source: Literal["registry", "path"]
    identity: str  # content identity of the weights: artifact sha256 or the path's content hash


def detect_format(path: Path) -> ModelFormat:
    """Guess the storage format of a model directory or file.

    Args:
        path: An existing model directory, or a ``.onnx`` file.

    Returns:
        ``onnx`` for ``model.onnx`` (or a ``.onnx`` file), ``sentence_transformers`` for a directory with
        ``modules.json``, ``huggingface`` for a directory with ``config.json``.

    Raises:
        UnknownFormatError: None of these layouts; the message lists what was looked for.
    """
    if path.is_file() and path.suffix == ".onnx":
        return ModelFormat.ONNX
    if path.is_dir():
        if (path / "model.onnx").is_file():
            return ModelFormat.ONNX
        if (path / "modules.json").is_file() or (path / "config_sentence_transformers.json").is_file():
            return ModelFormat.SENTENCE_TRANSFORMERS
        if (path / "config.json").is_file():
            return ModelFormat.HUGGINGFACE
        if (path / "onnx" / "model.onnx").is_file():
            return ModelFormat.ONNX
    raise UnknownFormatError(
        f"cannot tell the format of {str(path)!r}: expected model.onnx (onnx), modules.json "
        "(sentence_transformers) or config.json (huggingface); register custom PyTorch modules with their "
        "load_config and evaluate them by id"
    )


def int8_onnx_file(path: Path) -> Path | None:
    """An int8 ONNX graph shipped with a model directory (at its root or under ``onnx/``), if any."""
    if path.is_file():
        return path if "int8" in path.name else int8_onnx_file(path.parent)
    for folder in (path, path / "onnx"):
        for name in _INT8_NAMES:
            if (folder / name).is_file():
                return folder / name
    return None


_hash_memo: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}
_hash_lock = threading.Lock()


def path_content_hash(path: Path) -> str:
    """sha256 over every file under ``path`` (names and bytes), memoised per file size and mtime."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    stamp = tuple((p.relative_to(path).as_posix() if p != path else p.name, *_size_mtime(p)) for p in files)
    key = (str(path.resolve()), stamp)
    with _hash_lock:
        if key in _hash_memo:
            return _hash_memo[key]
    digest = hashlib.sha256()
    for file, (name, _, _) in zip(files, stamp, strict=True):
        digest.update(name.encode())
        with file.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
    value = digest.hexdigest()
    with _hash_lock:
        _hash_memo[key] = value
    return value


def _size_mtime(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _path_config(path: Path, backend: BackendChoice) -> dict[str, Any]:
    fmt = detect_format(path)
    int8 = int8_onnx_file(path)
    if backend != "native" and int8 is not None:
        return {"model_path": str(int8), "model_format": ModelFormat.ONNX.value, "quantization": "int8"}
    config: dict[str, Any] = {"model_path": str(path), "model_format": fmt.value}
    if backend == "int8":
        config["quantization"] = "int8"
    return config


def _load_registered(
    registry: ModelRegistry, ref: str, loader: CustomModelLoader, backend: BackendChoice
) -> ResolvedModel:
    # Evaluating an old, deprecated version is a normal thing to do: deprecation refuses traffic only.
    record = registry.resolve(ref, allow_deprecated=True)
    fmt = record.metadata.format
    shipped_int8 = None
    if backend != "native" and fmt is not ModelFormat.ONNX:
        artifact = registry.artifact_path(record.model_id, verify=False)
        shipped_int8 = int8_onnx_file(artifact) if artifact is not None else None
    if shipped_int8 is not None:
        registry.artifact_path(record.model_id, verify=True)
        options = {k: v for k, v in record.load_config.items() if k not in ("use_onnx", "use_fp16")}
        model = loader.load_model(
            {**options, "model_path": str(shipped_int8), "model_format": ModelFormat.ONNX.value, "quantization": "int8"}
        )
    else:
        wants_int8 = backend == "int8" or (backend == "fastest" and fmt is ModelFormat.ONNX)
        overrides = {"quantization": "int8"} if wants_int8 else None
        _, model = registry.load_model(record.model_id, loader, allow_deprecated=True, overrides=overrides)
    return ResolvedModel(
        model=model,
        model_id=record.model_id,
        model_name=record.metadata.model_name,
        version=record.metadata.version,
        source="registry",
        identity=record.artifact_sha256 or record.model_id,
    )


def resolve_model(
    ref: str | Path,
    *,
    registry: ModelRegistry | None,
    loader: CustomModelLoader,
    backend: BackendChoice = "fastest",
) -> ResolvedModel:
    """Load the model ``ref`` names, on the backend ``backend`` asks for.

    Resolution order: an existing path (format auto-detected), then a registry reference (id,
    ``name@version``, ``name@alias`` or a bare name), then a well-known hub id with a local copy.

    Args:
        ref: Path, registry reference or hub id.
        registry: Registry to resolve references in; None resolves paths and hub ids only.
        loader: Loader (and model cache) to use.
        backend: See :data:`BackendChoice`.

    Returns:
        The loaded model with its identity.

    Raises:
        ModelNotFoundError, AliasNotFoundError: Not a path, not registered and not a known hub id.
        UnknownFormatError: A path whose format cannot be detected.
        ArtifactIntegrityError: A registered artifact does not match its sha256.
    """
    text = str(ref)
    candidate = Path(text).expanduser()
    if not candidate.exists() and registry is not None:
        try:
            return _load_registered(registry, text, loader, backend)
        except NotFoundError as registry_error:
            try:
                candidate = resolve_model_path(text)
            except NotFoundError:
                raise registry_error from None
    elif not candidate.exists():
        try:
            candidate = resolve_model_path(text)
        except NotFoundError as exc:
            raise ModelNotFoundError(
                f"model {text!r} is not a path or a locally installed hub id, and no registry was given "
                "to resolve it in",
                model_id=text,
            ) from exc
    path = candidate.resolve()
    model = loader.load_model(_path_config(path, backend))
    # A hub id names the model better than the folder it is installed in.
    name = text if not Path(text).expanduser().exists() else path.stem if path.is_file() else path.name
    return ResolvedModel(
        model=model,
        model_id=str(path),
        model_name=name,
        version="",
        source="path",
        identity=path_content_hash(path),
    )

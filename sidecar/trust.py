"""What a network client may make the server do with code and files: run none, read and write only in roots.

Three checks at the edge, each applied by one servicer before the core sees the request:

* :func:`check_client_load_config` (RegisterModel): loading options that name Python code to import
  (``additional_config.module_class``), turn on unpickling or remote code (``trust_remote_code``), pass
  arbitrary keyword arguments to a library loader (``model_kwargs``, ``module_kwargs``) or point at files
  (``tokenizer_path``) are refused. They stay available to the server's operator, who registers such
  models on the server itself (``rag-factory registry register --load-config``).
* :class:`ImportPolicy` (RegisterModel): ``artifact_path`` names regular files inside the import roots.
* :class:`JobPathPolicy` (StartJob, Evaluate, CompareRetrieval): datasets come from the data roots, models
  from the registry, the hub's local copies or the roots; a job writes only to its own folder.

Refusals answer PERMISSION_DENIED and never say whether a path outside the roots exists.
"""

from __future__ import annotations

import math
import os
import stat
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag_factory.data import BUNDLED_DIR
from rag_factory.errors import InvalidArgumentError, ModelPathNotFoundError, PermissionDeniedError

# additional_config keys that only tune a vetted backend (the ONNX engine and its threads). Every other
# top-level ModelConfig field is harmless except trust_remote_code, which a client may only leave false;
# names that are not ModelConfig fields are refused by the registry as INVALID_CONFIG.
CLIENT_ADDITIONAL_OPTIONS = frozenset({"onnx_runtime", "onnx_threads"})
ONNX_RUNTIMES = ("auto", "onnxruntime", "openvino")
MAX_ONNX_THREADS = 1024


def check_client_load_config(load_config: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``load_config`` when a network client may set it; otherwise raise PermissionDeniedError.

    Unknown option names pass through to the registry, which refuses them as INVALID_CONFIG. The client's
    additional options are checked here, where they are known: ``onnx_threads`` is returned as an int.

    Raises:
        PermissionDeniedError: An option that only the operator may set.
        InvalidArgumentError: ``onnx_runtime`` is not a known engine, or ``onnx_threads`` is not a whole
            number from 1 to ``MAX_ONNX_THREADS`` (1.5, NaN, 0, negative).
    """
    operator_only = []
    if load_config.get("trust_remote_code") not in (None, False):
        operator_only.append("trust_remote_code")
    additional = load_config.get("additional_config") or {}
    if isinstance(additional, Mapping):
        operator_only += sorted(
            f"additional_config.{key}" for key in additional if key not in CLIENT_ADDITIONAL_OPTIONS
        )
    if operator_only:
        raise PermissionDeniedError(
            f"load_config option(s) {', '.join(operator_only)} can run code or read files on the server, so they "
            f"cannot be set over the network; the server's operator registers such models with "
            f"`rag-factory registry register` on the server. additional_config keys a client may set: "
            f"{', '.join(sorted(CLIENT_ADDITIONAL_OPTIONS))}"
        )
    if not isinstance(additional, Mapping) or not additional:
        return dict(load_config)
    runtime = additional.get("onnx_runtime", "auto")
    if runtime not in ONNX_RUNTIMES:
        raise InvalidArgumentError(
            f"load_config.additional_config.onnx_runtime must be one of {', '.join(ONNX_RUNTIMES)}, "
            f"got {str(runtime)[:40]!r}"
        )
    checked = dict(additional)
    if "onnx_threads" in additional:
        # A Struct carries every number as a double: the 1 a client sends arrives as 1.0.
        checked["onnx_threads"] = _whole_number(additional["onnx_threads"], "additional_config.onnx_threads")
    return {**load_config, "additional_config": checked}


def _whole_number(value: Any, name: str, most: int = MAX_ONNX_THREADS) -> int:
    """``value`` as an int when it is a whole number in [1, most] (``1`` or ``1.0``); else InvalidArgumentError."""
    whole = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not whole or value != int(value) or not 1 <= value <= most:
        raise InvalidArgumentError(f"{name} must be a whole number from 1 to {most}, got {str(value)[:40]}")
    return int(value)


@dataclass(frozen=True)
class ImportPolicy:
    """Which server files ``RegisterModel.artifact_path`` may name: regular files inside the roots, size-capped.

    Without this, any client could copy any file the server can read (``/etc/shadow``, the process
    environment holding the auth token) into the registry and read its digest back, or hang a registration
    on a FIFO.
    """

    roots: tuple[Path, ...]
    max_bytes: int

    @classmethod
    def from_settings(cls, roots: Sequence[str], max_gb: float) -> ImportPolicy:
        """The policy of ``models.embedding.import_roots`` and ``max_artifact_gb``."""
        return cls(tuple(Path(root).expanduser().resolve() for root in roots), int(max_gb * 1024**3))

    def _inside(self, path: Path) -> bool:
        return any(path == root or path.is_relative_to(root) for root in self.roots)

    def check(self, artifact_path: str) -> Path:
        """The resolved path when a client may import it.

        Raises:
            PermissionDeniedError: No import root is configured, or the path (or a link in it) leads outside.
            ModelPathNotFoundError: Nothing is there (only said for paths inside a root).
            InvalidArgumentError: A FIFO, device or socket, or more than ``max_bytes`` in all.
        """
        if not self.roots:
            raise PermissionDeniedError(
                "this server copies no files named by clients: its operator lists the folders clients may "
                "import from in models.embedding.import_roots"
            )
        resolved = Path(artifact_path).expanduser().resolve()
        if not self._inside(resolved):
            raise PermissionDeniedError("artifact_path must lie inside one of the server's import roots")
        if not resolved.exists():
            raise ModelPathNotFoundError("artifact_path names nothing inside the import roots")
        total = 0
        for path in [resolved, *_walk(resolved)]:
            target = path.resolve()
            if not self._inside(target):
                raise PermissionDeniedError(f"{path.name!r} links outside the server's import roots")
            info = target.stat()
            if path != resolved and path.is_symlink() and stat.S_ISDIR(info.st_mode):
                # The walk does not follow links to folders (a link cycle would never end), but the
                # registry's copy would: what lies behind one would go unchecked.
                raise InvalidArgumentError(f"{path.name!r} links to a folder; put the folder itself in the artifact")
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                raise InvalidArgumentError(f"{path.name!r} is not a regular file or folder (a FIFO, device or socket)")
            total += info.st_size if stat.S_ISREG(info.st_mode) else 0
            if total > self.max_bytes:
                raise InvalidArgumentError(
                    f"the artifact is larger than the server's limit of {self.max_bytes / 1024**3:.1f} GiB "
                    "(models.embedding.max_artifact_gb)"
                )
        return resolved


def _walk(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found: list[Path] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        found += [Path(folder) / name for name in (*dirs, *files)]
    return found


# Job options naming where a job writes: chosen by the server, since a job replaces what it finds there.
SERVER_CHOSEN_JOB_PATHS = ("output_dir", "work_dir", "embedding_cache_dir", "registry_path")
# Job options naming what a job reads.
JOB_INPUT_PATHS = ("data_dir", "corpus")
# Job options naming a model the job loads.
JOB_MODEL_OPTIONS = ("base_model", "teacher_model")
MAX_CLIENT_PATH_CHARS = 4096  # PATH_MAX on Linux


def _names_a_path(value: str) -> bool:
    # Registry references (id, name@version, name@alias) hold no "/", and a hub id is "org/name". Anything
    # else, or a name that happens to exist relative to the server's working folder, is loaded as a path.
    if value.startswith(("/", "~", ".")) or "\\" in value or value.count("/") > 1:
        return True
    try:
        return Path(value).exists()
    except (OSError, ValueError):  # too long, or a NUL: no registry reference either
        return True


@dataclass(frozen=True)
class JobPathPolicy:
    """What a client may make a job or an evaluation read, and where a job writes.

    A client used to choose ``output_dir`` and ``work_dir``, which a job clears and overwrites, so a
    client could delete any directory the server may write; and the answers to bad ``data_dir`` values
    told which server paths exist. Now a job reads datasets only from the data roots (and the bundled
    datasets) and writes only to a fresh folder of its own under ``jobs_dir``. The same holds for the
    EvaluationService, and for models: a model a client names (a job's ``base_model`` or
    ``teacher_model``, an evaluation's model) is a registry reference, a hub id with a local copy, or a
    path inside the data roots or the model roots (the import roots), never any folder the server can
    read. Refusals say the same whether or not the path exists.
    """

    data_roots: tuple[Path, ...]
    jobs_dir: Path
    model_roots: tuple[Path, ...] = ()

    @classmethod
    def from_settings(
        cls, data_roots: Sequence[str], jobs_dir: str, registry_path: str, import_roots: Sequence[str] = ()
    ) -> JobPathPolicy:
        """The policy of ``models.embedding.data_roots``, ``jobs_dir`` and ``import_roots`` (model folders)."""
        roots = (BUNDLED_DIR.resolve(), *(Path(root).expanduser().resolve() for root in data_roots))
        jobs = Path(jobs_dir).expanduser() if jobs_dir else Path(registry_path).expanduser() / "jobs"
        return cls(roots, jobs.resolve(), tuple(Path(root).expanduser().resolve() for root in import_roots))

    def _inside(self, key: str, value: str, roots: tuple[Path, ...], refusal: str) -> Path:
        if len(value) > MAX_CLIENT_PATH_CHARS or "\x00" in value:
            raise InvalidArgumentError(f"{key}: at most {MAX_CLIENT_PATH_CHARS} characters, and no NUL characters")
        try:
            resolved = Path(value).expanduser().resolve()
        except (OSError, RuntimeError):  # "~nosuchuser", a link loop: refused like any path outside
            resolved = None
        if resolved is None or not any(resolved == root or resolved.is_relative_to(root) for root in roots):
            # Said without checking whether the path exists, so the answer tells nothing about it.
            raise PermissionDeniedError(f"{key} must be {refusal}")
        return resolved

    def dataset(self, key: str, value: object) -> Path:
        """The resolved path of a dataset (or corpus file) a client may have read.

        Raises:
            InvalidArgumentError: Empty, not a string, too long, or holding a NUL character.
            PermissionDeniedError: Outside the data roots and the bundled datasets (whether or not it exists).
        """
        if not isinstance(value, str):
            raise InvalidArgumentError(f"{key} must be a path (a string)")
        if not value:
            raise InvalidArgumentError(f"{key} is required: a BEIR dataset folder inside the server's data roots")
        where = "inside one of the server's data roots (models.embedding.data_roots) or a bundled dataset"
        return self._inside(key, value, self.data_roots, where)

    def model(self, key: str, value: object) -> str:
        """``value`` when a client may have that model loaded; a path comes back resolved.

        Raises:
            InvalidArgumentError: Empty, not a string, too long, or holding a NUL character.
            PermissionDeniedError: A path outside the data and model roots (whether or not it exists).
        """
        if not isinstance(value, str):
            raise InvalidArgumentError(f"{key} must be a model reference (a string)")
        if not value:
            raise InvalidArgumentError(f"{key} is required: a registered model, or a hub id with a local copy")
        if not _names_a_path(value):
            return value  # resolved by the registry, or among the hub's local copies
        where = (
            "a registered model, a hub id with a local copy, or a path inside one of the server's data roots "
            "(models.embedding.data_roots) or import roots (models.embedding.import_roots)"
        )
        return str(self._inside(key, value, (*self.data_roots, *self.model_roots), where))

    def check(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """The spec with its paths checked (and resolved) and its work folder chosen.

        Raises:
            PermissionDeniedError: The spec names where to write, or reads outside the roots.
            InvalidArgumentError: No ``data_dir``; a path that no file system could hold.
        """
        chosen = sorted(key for key in SERVER_CHOSEN_JOB_PATHS if spec.get(key) not in (None, ""))
        if chosen:
            raise PermissionDeniedError(
                f"job option(s) {', '.join(chosen)} cannot be set over the network: the server writes each job "
                f"to a folder of its own under its jobs_dir"
            )
        checked = dict(spec)
        for key in JOB_INPUT_PATHS:
            if key == "data_dir" or spec.get(key) not in (None, ""):  # data_dir is required
                checked[key] = str(self.dataset(key, spec.get(key)))
        for key in JOB_MODEL_OPTIONS:
            if spec.get(key) not in (None, ""):
                checked[key] = self.model(key, spec[key])
        checked["work_dir"] = str(self.jobs_dir / uuid.uuid4().hex)
        return checked

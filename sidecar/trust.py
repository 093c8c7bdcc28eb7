"""What a network client may make the server do with code and files: run none, read and write only in roots.

Three checks at the edge, each applied by one servicer before the core sees the request:

* :func:`check_client_load_config` (RegisterModel): loading options that name Python code to import
  (``additional_config.module_class``), turn on unpickling or remote code (``trust_remote_code``), pass
  arbitrary keyword arguments to a library loader (``model_kwargs``, ``module_kwargs``) or point at files
  (``tokenizer_path``) are refused. They stay available to the server's operator, who registers such
  models on the server itself (``rag-factory registry register --load-config``).
* :class:`ImportPolicy` (RegisterModel): ``artifact_path`` names regular files inside the import roots.
* :class:`JobPathPolicy` (StartJob): datasets come from the data roots; a job writes only to its own folder.

Refusals answer PERMISSION_DENIED and never say whether a path outside the roots exists.
"""

from __future__ import annotations

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


def check_client_load_config(load_config: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``load_config`` when a network client may set it; otherwise raise PermissionDeniedError.

    Unknown option names pass through to the registry, which refuses them as INVALID_CONFIG.
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
    return dict(load_config)


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


@dataclass(frozen=True)
class JobPathPolicy:
    """Where a job started over the network may read and write.

    A client used to choose ``output_dir`` and ``work_dir``, which a job clears and overwrites, so a
    client could delete any directory the server may write; and the answers to bad ``data_dir`` values
    told which server paths exist. Now a job reads datasets only from the data roots (and the bundled
    datasets) and writes only to a fresh folder of its own under ``jobs_dir``.
    """

    data_roots: tuple[Path, ...]
    jobs_dir: Path

    @classmethod
    def from_settings(cls, data_roots: Sequence[str], jobs_dir: str, registry_path: str) -> JobPathPolicy:
        """The policy of ``models.embedding.data_roots`` and ``jobs_dir``."""
        roots = (BUNDLED_DIR.resolve(), *(Path(root).expanduser().resolve() for root in data_roots))
        jobs = Path(jobs_dir).expanduser() if jobs_dir else Path(registry_path).expanduser() / "jobs"
        return cls(roots, jobs.resolve())

    def check(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """The spec with its paths checked and its work folder chosen.

        Raises:
            PermissionDeniedError: The spec names where to write, or reads outside the data roots.
        """
        chosen = sorted(key for key in SERVER_CHOSEN_JOB_PATHS if spec.get(key) not in (None, ""))
        if chosen:
            raise PermissionDeniedError(
                f"job option(s) {', '.join(chosen)} cannot be set over the network: the server writes each job "
                f"to a folder of its own under its jobs_dir"
            )
        if not spec.get("data_dir"):
            raise InvalidArgumentError("data_dir is required: a BEIR dataset folder inside the server's data roots")
        for key in JOB_INPUT_PATHS:
            value = spec.get(key)
            if value in (None, ""):
                continue
            resolved = Path(str(value)).expanduser().resolve()
            if not any(resolved == root or resolved.is_relative_to(root) for root in self.data_roots):
                # Said without checking whether the path exists, so the answer tells nothing about it.
                raise PermissionDeniedError(
                    f"{key} must lie inside one of the server's data roots (models.embedding.data_roots) "
                    "or be a bundled dataset"
                )
        work_dir = self.jobs_dir / uuid.uuid4().hex
        return {**spec, "work_dir": str(work_dir)}

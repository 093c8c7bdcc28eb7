"""What a network client may ask the server to load: no code, no trusted loading, no files outside the roots.

Registering a model over gRPC stores loading options that the server later acts on. A few options name
Python code to import (``additional_config.module_class``), turn on unpickling or remote code
(``trust_remote_code``), pass arbitrary keyword arguments to a library loader (``model_kwargs``,
``module_kwargs``) or point at files (``tokenizer_path``). Any of those lets a client run code or read
files on the server, so over the network they are refused with PERMISSION_DENIED. They stay available to
the server's operator, who registers such models on the server itself (``rag-factory registry register``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
            mode = target.stat().st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise InvalidArgumentError(f"{path.name!r} is not a regular file or folder (a FIFO, device or socket)")
            total += target.stat().st_size if stat.S_ISREG(mode) else 0
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

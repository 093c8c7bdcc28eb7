"""What a network client may ask the server to load: no code, no trusted loading, no paths.

Registering a model over gRPC stores loading options that the server later acts on. A few options name
Python code to import (``additional_config.module_class``), turn on unpickling or remote code
(``trust_remote_code``), pass arbitrary keyword arguments to a library loader (``model_kwargs``,
``module_kwargs``) or point at files (``tokenizer_path``). Any of those lets a client run code or read
files on the server, so over the network they are refused with PERMISSION_DENIED. They stay available to
the server's operator, who registers such models on the server itself (``rag-factory registry register``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rag_factory.errors import PermissionDeniedError

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

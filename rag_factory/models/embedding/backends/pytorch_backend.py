"""Custom PyTorch backend: TorchScript, safetensors weights for a named module class, or trusted pickles.

A custom module takes ``input_ids`` and ``attention_mask`` (and ``token_type_ids`` when its
``forward`` names it) and returns token embeddings ``(batch, tokens, dim)`` or sentence embeddings
``(batch, dim)``. The tokenizer comes from ``tokenizer.json`` next to the weights, or from
``additional_config["tokenizer_path"]``.
"""

from __future__ import annotations

import importlib
import inspect
import zipfile
from pathlib import Path
from typing import Any

from rag_factory.errors import InvalidConfigError, ModelLoadError, UntrustedModelFileError
from rag_factory.models.embedding.backends.token_model import TokenEmbeddingModel
from rag_factory.models.embedding.models import ModelConfig

_WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ts", ".jit", ".torchscript")


def _find_weights(path: Path) -> Path:
    if path.is_file():
        return path
    files = sorted(p for p in path.iterdir() if p.suffix in _WEIGHT_SUFFIXES)
    if len(files) != 1:
        raise InvalidConfigError(
            f"format 'pytorch' expects exactly one weights file ({', '.join(_WEIGHT_SUFFIXES)}) in "
            f"{str(path)!r}; found {len(files)}; pass the file itself",
            path=str(path),
        )
    return files[0]


def _is_torchscript(path: Path) -> bool:
    # TorchScript archives are zip files holding compiled code; plain torch.save zips hold none.
    if path.suffix in (".ts", ".jit", ".torchscript"):
        return True
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name or name.startswith("code/") for name in archive.namelist())


def _import_class(dotted: str) -> type[Any]:
    module_name, _, attribute = dotted.partition(":")
    if not attribute:
        module_name, _, attribute = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute)  # type: ignore[no-any-return]
    except (ImportError, AttributeError, ValueError) as exc:
        raise InvalidConfigError(f"module_class {dotted!r} cannot be imported: {exc}") from exc


def load_torch_module(weights: Path, config: ModelConfig) -> Any:
    """Load a custom module safely; pickles need ``trust_remote_code=True``."""
    import torch

    if _is_torchscript(weights):
        return torch.jit.load(str(weights), map_location="cpu")  # type: ignore[no-untyped-call]
    options = config.additional_config
    if weights.suffix == ".safetensors":
        class_path = options.get("module_class")
        if not isinstance(class_path, str):
            raise InvalidConfigError(
                "safetensors weights need additional_config['module_class'] ('package.module:Class') "
                "to build the module they belong to"
            )
        from safetensors.torch import load_file

        module = _import_class(class_path)(**options.get("module_kwargs", {}))
        module.load_state_dict(load_file(str(weights)))
        return module
    if not config.trust_remote_code:
        raise UntrustedModelFileError(
            f"{weights.name!r} is a pickle, which can run arbitrary code when loaded; convert it to "
            "safetensors or TorchScript, or set trust_remote_code=True if you trust its origin",
            path=str(weights),
        )
    return torch.load(str(weights), map_location="cpu", weights_only=False)


class PyTorchModel(TokenEmbeddingModel):
    """A custom torch module with its tokenizer."""

    backend_name = "pytorch"

    def __init__(self, path: Path, config: ModelConfig) -> None:
        weights = _find_weights(path)
        tokenizer_dir = Path(config.additional_config.get("tokenizer_path", weights.parent))
        try:
            module = load_torch_module(weights, config)
        except (InvalidConfigError, UntrustedModelFileError):
            raise
        except Exception as exc:
            raise ModelLoadError(f"could not load PyTorch module {str(weights)!r}: {exc}") from exc
        super().__init__(tokenizer_dir=tokenizer_dir, module=module, config=config, source=weights)

    def _accepted_inputs(self) -> set[str]:
        forward = getattr(self._module, "forward", None)
        try:
            parameters = set(inspect.signature(forward).parameters) if forward is not None else set()
        except (TypeError, ValueError):  # TorchScript methods may hide their signature
            parameters = set()
        wanted = {"input_ids", "attention_mask", "token_type_ids"} & parameters
        return wanted or {"input_ids", "attention_mask"}

    def _forward(self, inputs: dict[str, Any]) -> Any:
        ordered = [inputs[name] for name in ("input_ids", "attention_mask", "token_type_ids") if name in inputs]
        output = self._module(*ordered)
        if isinstance(output, dict):
            output = output.get("token_embeddings", output.get("sentence_embedding"))
        elif isinstance(output, tuple | list):
            output = output[0]
        return output

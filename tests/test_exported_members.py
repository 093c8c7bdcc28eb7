"""Each public package's ``__all__`` lists exactly its public names (as httpx checks its own)."""

from __future__ import annotations

import importlib
import types

import pytest

PUBLIC_PACKAGES = [
    "plugin",
    "rag_factory.arrays",
    "rag_factory.data",
    "rag_factory.experiments",
    "rag_factory.hooks",
    "rag_factory.models.embedding",
    "rag_factory.models.evaluation",
    "rag_factory.models.monitoring",
    "rag_factory.models.training",
    "rag_factory.retrieval",
    "rag_factory.statistics",
    "rag_factory.storage",
]


OUR_ROOTS = {"rag_factory", "plugin"}


def _imported_from_elsewhere(value: object) -> bool:
    # A class or function another library defined (``Path`` imported for a signature) is not ours to export.
    origin = getattr(value, "__module__", None) or ""
    return isinstance(value, type | types.FunctionType) and origin.split(".")[0] not in OUR_ROOTS


def _public_names(module: types.ModuleType) -> set[str]:
    names = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
        and not _imported_from_elsewhere(value)
    }
    # Names a module serves lazily through __getattr__ (SPEC re-exports) count as public too.
    return names | {
        name for name in getattr(module, "__all__", ()) if name not in vars(module) and hasattr(module, name)
    }


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_all_lists_exactly_the_public_names(package: str) -> None:
    module = importlib.import_module(package)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{package} has no __all__"
    assert len(exported) == len(set(exported)), f"{package}.__all__ repeats a name"
    assert set(exported) == _public_names(module)


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_every_exported_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []

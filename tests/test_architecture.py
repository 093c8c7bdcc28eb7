"""The layer rules cover every room: a new package cannot slip past the import contracts unnoticed."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path
from typing import Any

import rag_factory
import rag_factory.models

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
APPLICATION = {"rag_factory.cli", "rag_factory.demo"}


def _contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]
    return {contract["id"]: contract for contract in config["contracts"]}


def _rooms() -> set[str]:
    """Every direct child of rag_factory, with rag_factory.models replaced by its children."""
    rooms = {f"rag_factory.{m.name}" for m in pkgutil.iter_modules(rag_factory.__path__)}
    rooms.discard("rag_factory.models")
    rooms |= {f"rag_factory.models.{m.name}" for m in pkgutil.iter_modules(rag_factory.models.__path__)}
    return rooms


def test_every_room_of_the_core_has_a_place_in_the_layers() -> None:
    layered = {name.strip() for layer in _contracts()["layers"]["layers"] for name in layer.split("|") if name.strip()}
    assert _rooms() - layered == set()


def test_every_room_below_the_application_is_bound_by_the_no_transport_rule() -> None:
    sources = set(_contracts()["core-without-transport"]["source_modules"])
    covered = {room for room in _rooms() if any(room == s or room.startswith(f"{s}.") for s in sources)}
    assert _rooms() - APPLICATION - covered == set()
    assert not any(room in sources for room in APPLICATION)

"""Retrieval datasets: the BEIR loader and the small datasets bundled with the package."""

from __future__ import annotations

from pathlib import Path

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"


def bundled_dataset(name: str = "scifact_mini") -> Path:
    """Path of a dataset shipped inside the package (BEIR layout)."""
    path = BUNDLED_DIR / name
    if not path.is_dir():
        available = sorted(p.name for p in BUNDLED_DIR.iterdir() if p.is_dir())
        raise FileNotFoundError(f"no bundled dataset {name!r}; bundled: {', '.join(available)}")
    return path


__all__ = ["BUNDLED_DIR", "bundled_dataset"]

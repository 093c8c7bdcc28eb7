"""Sidecar settings: YAML in the SPEC layout, environment overrides, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_factory.errors import InvalidConfigError
from sidecar.settings import load_settings

YAML = """
address: 127.0.0.1:6000
models:
  embedding:
    default_model_id: legal@production
    registry_path: /srv/registry
    ab_testing:
      enabled: true
      default_traffic_split: 0.2
    cache_dir: /srv/cache
    cache_size_gb: 2
"""


def test_yaml_file_in_the_spec_layout(tmp_path: Path) -> None:
    path = tmp_path / "sidecar.yaml"
    path.write_text(YAML)
    settings = load_settings(path, environ={})
    embedding = settings.embedding
    assert (settings.address, embedding.default_model_id, embedding.registry_path) == (
        "127.0.0.1:6000",
        "legal@production",
        "/srv/registry",
    )
    assert (embedding.ab_testing.enabled, embedding.ab_testing.default_traffic_split) == (True, 0.2)
    assert (embedding.cache_dir, embedding.cache_size_gb) == ("/srv/cache", 2.0)


def test_defaults_bind_loopback_only() -> None:
    assert load_settings(environ={}).address.startswith("127.0.0.1:")


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sidecar.yaml"
    path.write_text(YAML)
    settings = load_settings(
        path,
        environ={"RAG_FACTORY_AB_DEFAULT_TRAFFIC_SPLIT": "0.05", "RAG_FACTORY_DEFAULT_MODEL_ID": "legal@candidate"},
    )
    assert settings.embedding.ab_testing.default_traffic_split == 0.05
    assert settings.embedding.default_model_id == "legal@candidate"


@pytest.mark.parametrize(
    ("content", "environ", "message"),
    [
        ("models: [1, 2]", {}, "models"),
        ("a: [", {}, "not valid YAML"),
        (None, {}, "does not exist"),
        ("", {"RAG_FACTORY_AB_DEFAULT_TRAFFIC_SPLIT": "1.5"}, "default_traffic_split"),
    ],
    ids=["wrong-shape", "bad-yaml", "missing-file", "split-out-of-range"],
)
def test_invalid_settings_name_the_problem(
    tmp_path: Path, content: str | None, environ: dict[str, str], message: str
) -> None:
    path = tmp_path / "sidecar.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InvalidConfigError, match=message):
        load_settings(path, environ=environ)

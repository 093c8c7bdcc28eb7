"""Well-known hub ids resolve to local copies; anything else fails with a message that helps."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_factory.errors import HubModelNotAvailableError, ModelPathNotFoundError
from rag_factory.models.embedding.hub import known_hub_ids, resolve_model_path


@pytest.mark.parametrize("name", ["sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2", "ALL-minilm-l6-v2"])
def test_well_known_ids_resolve_to_the_packaged_model(name: str) -> None:
    path = resolve_model_path(name)
    assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()


def test_existing_paths_are_returned_as_they_are(tmp_path: Path) -> None:
    assert resolve_model_path(str(tmp_path)) == tmp_path.resolve()


def test_a_hub_id_without_local_copy_names_the_ids_that_do_have_one() -> None:
    with pytest.raises(HubModelNotAvailableError) as caught:
        resolve_model_path("BAAI/bge-small-en-v1.5")
    assert "cannot be reached" in caught.value.message
    assert known_hub_ids()[0] in caught.value.message


def test_a_missing_local_path_is_reported_as_such(tmp_path: Path) -> None:
    with pytest.raises(ModelPathNotFoundError, match="does not exist"):
        resolve_model_path(str(tmp_path / "nope" / "model"))

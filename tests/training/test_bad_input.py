"""Each bad input fails with a typed error before any model is loaded or trained."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from training_helpers import fast_config

from rag_factory.data.beir import Document, write_beir
from rag_factory.errors import DatasetError, ModelNotFoundError, RagFactoryError, UnknownFormatError
from rag_factory.models.training.events import TrainingEvent
from rag_factory.models.training.trainer import fine_tune


def _copy(small_scifact: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(small_scifact, tmp_path / "data"))


def _run_expecting(error: type[RagFactoryError], data: Path, tmp_path: Path, **overrides: object) -> str:
    events: list[TrainingEvent] = []
    with pytest.raises(error) as caught:
        fine_tune(fast_config(data, tmp_path / "work", **overrides), on_event=events.append)
    assert events == []  # nothing started
    assert not (tmp_path / "work" / "checkpoints").exists()
    return caught.value.message


def test_missing_dataset_files_are_refused(small_scifact: Path, tmp_path: Path) -> None:
    data = _copy(small_scifact, tmp_path)
    (data / "queries.jsonl").unlink()
    assert "missing queries.jsonl" in _run_expecting(DatasetError, data, tmp_path)


def test_a_dataset_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    assert "does not exist" in _run_expecting(DatasetError, tmp_path / "nowhere", tmp_path)


def test_qrels_naming_unknown_ids_are_refused(tmp_path: Path) -> None:
    corpus = {"d1": Document("d1", "", "text")}
    data = write_beir(tmp_path / "data", corpus, {"q1": "query"}, {"train": {"q1": {"d1": 1, "d404": 1}}})
    assert "unknown document ids" in _run_expecting(DatasetError, data, tmp_path)


def test_an_empty_training_set_after_filtering_is_refused(small_scifact: Path, tmp_path: Path) -> None:
    from rag_factory.data.beir import load_beir

    every_query = list(load_beir(small_scifact).split("train"))
    with pytest.raises(DatasetError, match="no training pairs"):
        fine_tune(fast_config(small_scifact, tmp_path / "work"), exclude_ids=every_query)


def test_test_queries_in_the_training_split_are_refused(small_scifact: Path, tmp_path: Path) -> None:
    data = _copy(small_scifact, tmp_path)
    train_lines = (data / "qrels" / "train.tsv").read_text().splitlines()
    test_lines = (data / "qrels" / "test.tsv").read_text().splitlines()
    (data / "qrels" / "test.tsv").write_text("\n".join(test_lines + train_lines[1:3]) + "\n")
    assert "also test queries" in _run_expecting(DatasetError, data, tmp_path)


def test_an_unknown_strategy_is_refused_with_the_valid_names(small_scifact: Path, tmp_path: Path) -> None:
    message = _run_expecting(UnknownFormatError, small_scifact, tmp_path, strategy="magic")
    assert "valid strategies: cached_mnrl, distillation, hard_negative, mnrl, triplet" in message


def test_a_base_model_that_is_not_registered_is_refused(small_scifact: Path, tmp_path: Path) -> None:
    message = _run_expecting(
        ModelNotFoundError, small_scifact, tmp_path, registry_path=tmp_path / "registry", base_model="legal@2.1.0"
    )
    assert "'legal@2.1.0' is not registered" in message


@pytest.mark.parametrize("command", ["train", "demo"])
@pytest.mark.parametrize("epochs", ["0", "-3", "two"])
def test_the_command_line_refuses_a_bad_epoch_count_before_any_work(
    command: str, epochs: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rag_factory.cli import main

    extra = ["--data", str(tmp_path)] if command == "train" else ["--workdir", str(tmp_path / "demo")]
    with pytest.raises(SystemExit) as exited:
        main([command, *extra, "--epochs", epochs])
    assert exited.value.code == 2  # argparse's usage error
    assert "--epochs: expected a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def test_a_result_name_the_registry_would_refuse_is_refused_before_training(tmp_path: Path) -> None:
    # "default" is reserved (requests use it for the server's default model); a name with a space is not
    # a name at all. Both used to be found out only when registering, after the whole run.
    from pydantic import ValidationError

    from rag_factory.models.training.config import FineTuneConfig

    for name, wording in (("default", "is reserved"), ("my model", "not allowed")):
        with pytest.raises(ValidationError, match=wording):
            FineTuneConfig(data=tmp_path, model_name=name)

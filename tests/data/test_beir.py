"""The BEIR loader on the bundled subset, and its errors on broken datasets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag_factory.data import bundled_dataset
from rag_factory.data.beir import BeirDataset, load_beir, write_beir
from rag_factory.errors import DatasetError


def test_bundled_scifact_subset_has_disjoint_train_and_test_queries(scifact_mini: BeirDataset) -> None:
    train, test = scifact_mini.split("train"), scifact_mini.split("test")
    assert (len(train), len(test)) == (250, 100)
    assert not set(train) & set(test)
    assert len(scifact_mini.corpus) == 1023
    assert (bundled_dataset("scifact_mini") / "LICENSE.md").is_file()


def test_every_judged_document_is_in_the_corpus(scifact_mini: BeirDataset) -> None:
    judged = {d for split in scifact_mini.qrels.values() for docs in split.values() for d in docs}
    assert judged <= set(scifact_mini.corpus)


def test_unknown_split_names_the_available_ones(scifact_mini: BeirDataset) -> None:
    with pytest.raises(DatasetError, match="test, train"):
        scifact_mini.split("dev")


def test_missing_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text("")
    with pytest.raises(DatasetError, match="queries.jsonl, qrels"):
        load_beir(tmp_path)


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(bundled_dataset("scifact_mini"), target)
    return target


def test_dangling_qrels_are_refused_unless_lenient(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    with (copy / "qrels" / "test.tsv").open("a") as handle:
        handle.write("0\tno-such-doc\t1\n")
    with pytest.raises(DatasetError, match="1 unknown document ids"):
        load_beir(copy)
    lenient = load_beir(copy, strict=False)
    assert "no-such-doc" not in lenient.split("test").get("0", {})


def test_content_hash_changes_with_the_data(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    before = load_beir(copy).content_hash()
    with (copy / "queries.jsonl").open("a") as handle:
        handle.write('{"_id": "new", "text": "an extra query"}\n')
    assert load_beir(copy).content_hash() != before


def test_invalid_json_lines_are_reported_with_their_line_number(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    with (copy / "corpus.jsonl").open("a") as handle:
        handle.write("{not json\n")
    with pytest.raises(DatasetError, match="corpus.jsonl line 1024"):
        load_beir(copy)


def test_a_written_dataset_loads_back_equal(scifact_mini: BeirDataset, tmp_path: Path) -> None:
    qrels = {"test": dict(list(scifact_mini.split("test").items())[:5])}
    doc_ids = sorted({d for judged in qrels["test"].values() for d in judged})
    corpus = {d: scifact_mini.corpus[d] for d in doc_ids}
    queries = {q: scifact_mini.queries[q] for q in qrels["test"]}

    loaded = load_beir(write_beir(tmp_path / "copy", corpus, queries, qrels))

    assert loaded.corpus == corpus
    assert loaded.queries == queries
    assert loaded.qrels == qrels

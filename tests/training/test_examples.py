"""Training-data loaders (BEIR, LlamaIndex JSON, query logs) and de-duplication."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag_factory.data.beir import BeirDataset
from rag_factory.errors import DatasetError
from rag_factory.models.training.examples import (
    TrainingData,
    deduplicate,
    from_beir,
    load_llamaindex_json,
    load_query_logs,
    save_llamaindex_json,
)


def test_from_beir_turns_each_judgement_into_a_positive_pair(scifact_mini: BeirDataset) -> None:
    data = from_beir(scifact_mini, "train")
    judged = sum(len(docs) for docs in scifact_mini.split("train").values())
    assert len(data.pairs) == judged
    assert data.source_hash == scifact_mini.content_hash()
    qid, doc_id = data.pairs[0]
    assert data.corpus[doc_id] == scifact_mini.corpus[doc_id].as_text()


def test_llamaindex_json_round_trips(scifact_mini: BeirDataset, tmp_path: Path) -> None:
    data = from_beir(scifact_mini, "test")
    path = save_llamaindex_json(data, tmp_path / "qa.json")
    raw = json.loads(path.read_text())
    assert set(raw) >= {"queries", "corpus", "relevant_docs"}
    again = load_llamaindex_json(path)
    assert again.pairs == data.pairs
    assert again.corpus == data.corpus
    assert {q: again.queries[q] for q in again.query_ids()} == {q: data.queries[q] for q in data.query_ids()}


def test_llamaindex_json_with_unknown_document_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "qa.json"
    path.write_text(json.dumps({"queries": {"q": "x"}, "corpus": {"d": "y"}, "relevant_docs": {"q": ["nope"]}}))
    with pytest.raises(DatasetError, match="unknown document ids"):
        load_llamaindex_json(path)


def _write_logs(tmp_path: Path, rows: list[dict[str, object]]) -> tuple[Path, Path]:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": d, "title": "", "text": f"doc {d}"}) + "\n" for d in "abcd"))
    logs = tmp_path / "logs.jsonl"
    logs.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return logs, corpus


def test_query_logs_give_clicks_as_positives_and_skips_as_negatives(tmp_path: Path) -> None:
    logs, corpus = _write_logs(
        tmp_path,
        [
            {"query": "What is BRCA1?", "clicked_doc_id": "a", "skipped_doc_ids": ["b", "c"]},
            {"query": "what is  brca1?", "clicked_doc_id": "a", "skipped_doc_ids": ["d"]},
            {"query": "tp53 function", "clicked_doc_id": "c"},
        ],
    )
    data = load_query_logs(logs, corpus)
    assert len(data.query_ids()) == 2
    assert data.pairs == [("log-0", "a"), ("log-1", "c")]
    assert data.negatives == {"log-0": ["b", "c", "d"]}


def test_query_logs_with_a_click_on_an_unknown_document_are_refused(tmp_path: Path) -> None:
    logs, corpus = _write_logs(tmp_path, [{"query": "x", "clicked_doc_id": "zz"}])
    with pytest.raises(DatasetError, match="unknown document ids"):
        load_query_logs(logs, corpus)


def test_query_logs_without_their_corpus_are_refused(tmp_path: Path) -> None:
    logs, _ = _write_logs(tmp_path, [{"query": "x", "clicked_doc_id": "a"}])
    with pytest.raises(DatasetError, match="does not exist"):
        load_query_logs(logs, tmp_path / "missing.jsonl")


def test_deduplicate_merges_same_text_and_same_positive() -> None:
    data = TrainingData(
        name="t",
        queries={"1": "Does X cause Y?", "2": "does x  cause y?", "3": "other"},
        corpus={"a": "A", "b": "B"},
        pairs=[("1", "a"), ("2", "a"), ("2", "b"), ("3", "a"), ("3", "a")],
        negatives={"2": ["a", "b"], "3": ["b"]},
    )
    deduped = deduplicate(data)
    assert deduped.pairs == [("1", "a"), ("1", "b"), ("3", "a")]
    assert deduped.negatives == {"3": ["b"]}  # a positive is never also a negative
    assert "2" not in deduped.queries

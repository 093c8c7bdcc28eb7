"""Broken dataset files are a client's mistake: a DatasetError naming the file and line, never a crash.

Issue 18, item 13: a line without ``_id``, a qrels score that is not a number, bytes that are not
UTF-8 and JSON lines that are not objects used to raise KeyError, ValueError, UnicodeDecodeError or
TypeError, which the sidecar answered as INTERNAL. Each case here is such a line in an otherwise valid
dataset (BEIR, LlamaIndex JSON, query logs); a FIFO in place of a file used to hang the reader.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rag_factory.data.beir import Document, load_beir, write_beir
from rag_factory.errors import DatasetError
from rag_factory.models.training.examples import load_llamaindex_json, load_query_logs


def _dataset(tmp_path: Path) -> Path:
    corpus = {"d1": Document("d1", "", "first"), "d2": Document("d2", "", "second")}
    return write_beir(tmp_path / "data", corpus, {"q1": "a query"}, {"test": {"q1": {"d1": 1}}})


def _append(file: Path, data: bytes) -> None:
    with file.open("ab") as handle:
        handle.write(data)


# (file, appended bytes, what the message says); each line is the file's third (corpus) or second line.
BROKEN_LINES = {
    "no-id": ("corpus.jsonl", b'{"title": "t", "text": "x"}\n', "corpus.jsonl line 3 has no '_id'"),
    "null-id": ("corpus.jsonl", b'{"_id": null, "text": "x"}\n', "corpus.jsonl line 3 has no '_id'"),
    "object-id": ("corpus.jsonl", b'{"_id": {"a": 1}, "text": "x"}\n', "corpus.jsonl line 3: '_id' must be"),
    "list-line": ("corpus.jsonl", b"[1, 2, 3]\n", "corpus.jsonl line 3 is not a JSON object"),
    "string-line": ("queries.jsonl", b'"just a string"\n', "queries.jsonl line 2 is not a JSON object"),
    "query-without-text": ("queries.jsonl", b'{"_id": "q2"}\n', "queries.jsonl line 2: a query needs a 'text'"),
    "invalid-utf8": ("corpus.jsonl", b'{"_id": "d3", "text": "\xff\xfe"}\n', "corpus.jsonl line 3 is not valid UTF-8"),
    "deep-nesting": ("corpus.jsonl", b"[" * 100_000 + b"\n", "corpus.jsonl line 3"),
    "score-not-a-number": ("qrels/test.tsv", b"q1\td2\thigh\n", "qrels/test.tsv line 3: the score must be a number"),
    "score-nan": ("qrels/test.tsv", b"q1\td2\tnan\n", "qrels/test.tsv line 3: the score must be a finite"),
    "score-infinite": ("qrels/test.tsv", b"q1\td2\t1e400\n", "qrels/test.tsv line 3: the score must be a finite"),
    "qrels-invalid-utf8": ("qrels/test.tsv", b"q1\td\xff2\t1\n", "qrels/test.tsv line 3 is not valid UTF-8"),
}


@pytest.mark.parametrize("case", list(BROKEN_LINES))
def test_a_broken_line_names_its_file_and_line(tmp_path: Path, case: str) -> None:
    file, data, message = BROKEN_LINES[case]
    root = _dataset(tmp_path)
    _append(root / file, data)

    with pytest.raises(DatasetError) as caught:
        load_beir(root)

    assert message in caught.value.message
    assert str(tmp_path) not in caught.value.message  # the dataset's own names, not the server's paths


def test_a_long_id_is_not_echoed_whole(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    _append(root / "qrels" / "test.tsv", f"q1\t{'x' * 20_000}\t1\n".encode())

    with pytest.raises(DatasetError, match="unknown document ids") as caught:
        load_beir(root)

    assert len(caught.value.message) < 400


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_in_place_of_a_file_is_refused_without_blocking(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    (root / "queries.jsonl").unlink()
    os.mkfifo(root / "queries.jsonl")  # opening it for reading would wait for a writer forever

    with pytest.raises(DatasetError, match="queries.jsonl must be regular files"):
        load_beir(root)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"[1, 2]", "is not a JSON object"),
        (b'{"queries": {}, "corpus": {}, "relevant_docs": {"q1": 5}}', "must be a list of document ids"),
        (b'{"queries": {"q1": "\xff"}}', "is not valid UTF-8"),
    ],
    ids=["list-root", "relevant-docs-not-a-list", "invalid-utf8"],
)
def test_a_broken_llamaindex_file_is_a_dataset_error(tmp_path: Path, payload: bytes, message: str) -> None:
    file = tmp_path / "qa.json"
    file.write_bytes(payload)

    with pytest.raises(DatasetError, match=message):
        load_llamaindex_json(file)


@pytest.mark.parametrize(
    ("corpus_line", "log_line", "message"),
    [
        ('{"text": "no id"}', '{"query": "q", "clicked_doc_id": "d1"}', "corpus.jsonl line 1 has no '_id'"),
        ('{"_id": "d1", "text": "x"}', '{"query": "q", "clicked_doc_id": ["d1"]}', "log.jsonl line 1: expected"),
        ('{"_id": "d1", "text": "x"}', "42", "log.jsonl line 1 is not a JSON object"),
    ],
    ids=["corpus-row-without-id", "click-not-an-id", "log-line-not-an-object"],
)
def test_broken_query_logs_are_dataset_errors(tmp_path: Path, corpus_line: str, log_line: str, message: str) -> None:
    (tmp_path / "corpus.jsonl").write_text(corpus_line + "\n")
    (tmp_path / "log.jsonl").write_text(log_line + "\n")

    with pytest.raises(DatasetError, match=message):
        load_query_logs(tmp_path / "log.jsonl", tmp_path / "corpus.jsonl")


def test_integer_ids_and_fractional_grades_still_load(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(json.dumps({"_id": 7, "text": "seven"}) + "\n")
    (root / "queries.jsonl").write_text(json.dumps({"_id": 1, "text": "which"}) + "\n")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\t7\t2.0\n")

    assert load_beir(root).split("test") == {"1": {"7": 2}}

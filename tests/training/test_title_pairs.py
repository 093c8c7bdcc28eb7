"""Title pseudo-queries: (title -> body) pairs from the corpus, never from documents a held-out split judges."""

from __future__ import annotations

from pathlib import Path

from training_helpers import fast_config

from rag_factory.data.beir import load_beir
from rag_factory.models.training.preparation import (
    TITLE_BODY_PREFIX,
    TITLE_QUERY_PREFIX,
    mining_view,
    prepare,
    title_pairs,
)


def test_title_pairs_add_titles_as_queries_and_bodies_as_positives(small_scifact: Path, tmp_path: Path) -> None:
    run = prepare(fast_config(small_scifact, tmp_path), registry=None)
    corpus = load_beir(small_scifact).corpus

    data = title_pairs(run, 40)

    added = [(q, d) for q, d in data.pairs if q.startswith(TITLE_QUERY_PREFIX)]
    assert len(added) == 40
    assert data.pairs[: len(run.train.pairs)] == run.train.pairs  # the real pairs stay, first
    for qid, doc in added:
        source = qid.removeprefix(TITLE_QUERY_PREFIX)
        assert doc == TITLE_BODY_PREFIX + source
        assert data.queries[qid] == corpus[source].title
        assert data.corpus[doc] == corpus[source].text  # the body alone: the title is the query


def test_title_pairs_never_use_documents_judged_by_test_or_validation(small_scifact: Path, tmp_path: Path) -> None:
    run = prepare(fast_config(small_scifact, tmp_path), registry=None)
    beir = load_beir(small_scifact)
    test_docs = {d for judged in beir.split("test").values() for d in judged}
    validation_docs = {d for _, d in run.validation.pairs}

    sources = {q.removeprefix(TITLE_QUERY_PREFIX) for q in title_pairs(run, 10_000).queries if q.startswith("title:")}

    assert sources  # the corpus has unjudged documents to draw from
    assert not sources & test_docs
    assert not sources & validation_docs


def test_title_pairs_leave_out_test_documents_even_when_no_test_split_is_evaluated(
    small_scifact: Path, tmp_path: Path
) -> None:
    run = prepare(fast_config(small_scifact, tmp_path, test_split=None), registry=None)
    test_docs = {d for judged in load_beir(small_scifact).split("test").values() for d in judged}

    sources = {q.removeprefix(TITLE_QUERY_PREFIX) for q in title_pairs(run, 10_000).queries if q.startswith("title:")}

    assert sources and not sources & test_docs


def test_title_pairs_are_off_by_default_and_deterministic_per_seed(small_scifact: Path, tmp_path: Path) -> None:
    run = prepare(fast_config(small_scifact, tmp_path), registry=None)
    other_seed = prepare(fast_config(small_scifact, tmp_path, seed=1), registry=None)

    assert title_pairs(run, 0) is run.train
    assert title_pairs(run, 20).pairs == title_pairs(run, 20).pairs
    assert title_pairs(run, 20).pairs != title_pairs(other_seed, 20).pairs


def test_the_mining_view_makes_a_titles_source_document_its_positive(small_scifact: Path, tmp_path: Path) -> None:
    run = prepare(fast_config(small_scifact, tmp_path), registry=None)
    data = title_pairs(run, 5)

    view = mining_view(data, run.data.corpus)

    assert view.corpus is run.data.corpus  # the miner searches the real corpus, in its vectors' order
    for (qid, doc), (view_qid, view_doc) in zip(data.pairs, view.pairs, strict=True):
        assert view_qid == qid
        # A title's source holds its body, so it must count as the positive, never as a mined negative.
        assert view_doc == doc.removeprefix(TITLE_BODY_PREFIX)
        assert view_doc in run.data.corpus

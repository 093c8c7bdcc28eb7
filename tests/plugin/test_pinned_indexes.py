"""Pinned indexes: every LlamaIndex ingestion path stamps its nodes, and an index is queried in its own space.

``RagFactoryEmbedding`` resolves its model reference to one exact version on first use. Whatever
LlamaIndex path builds the index, the nodes say which model made them, and queries of that index keep
using that version after the alias moves, until the index is explicitly re-embedded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import BaseNode, MetadataMode, TextNode

from plugin import (
    MODEL_ID_KEY,
    MODEL_NAME_KEY,
    MODEL_VERSION_KEY,
    PinnedIndex,
    RagFactoryEmbedding,
    build_pinned_index,
    find_stale_nodes,
    stamped_pin,
)
from rag_factory.data.beir import BeirDataset
from rag_factory.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    ModelDeprecatedError,
    ModelNotFoundError,
    RagFactoryError,
)
from tests.plugin.conftest import CANDIDATE_ID, TwoSpaces, corpus_nodes

pytestmark = pytest.mark.slow

QUERY = "Autophagy declines in aged organisms."
BASE_STAMP = {MODEL_ID_KEY: "minilm-onnx", MODEL_NAME_KEY: "minilm", MODEL_VERSION_KEY: "1.0.0"}


@pytest.fixture
def embed_model(sidecar_address: str) -> RagFactoryEmbedding:
    return RagFactoryEmbedding(
        address=sidecar_address, model="minilm@production", timeout_s=60, embed_batch_size=16, load_plugins=False
    )


@pytest.fixture
def documents(scifact_mini: BeirDataset) -> list[Document]:
    return [Document(text=doc.as_text(), doc_id=doc.doc_id) for doc in list(scifact_mini.corpus.values())[:6]]


def _stamps(nodes: list[BaseNode]) -> list[dict[str, object]]:
    return [{key: node.metadata.get(key) for key in BASE_STAMP} for node in nodes]


def _indexed_nodes(index: VectorStoreIndex) -> list[BaseNode]:
    """The nodes as the index stored them (its docstore), not the objects the caller passed in."""
    nodes = list(index.docstore.docs.values())
    assert nodes, "the index stored no nodes"
    return nodes


def _assert_all_stamped(index: VectorStoreIndex) -> None:
    nodes = _indexed_nodes(index)
    assert _stamps(nodes) == [BASE_STAMP] * len(nodes)
    for node in nodes:  # the stamp never changes the embedded or the LLM text
        assert "rag_factory" not in node.get_content(metadata_mode=MetadataMode.EMBED)
        assert "rag_factory" not in node.get_content(metadata_mode=MetadataMode.LLM)


# -- every ingestion path stamps ------------------------------------------------------------------


def test_from_documents_stamps_every_node(embed_model: RagFactoryEmbedding, documents: list[Document]) -> None:
    index = VectorStoreIndex.from_documents(documents, embed_model=embed_model)

    _assert_all_stamped(index)


def test_from_documents_with_use_async_stamps_every_node(
    embed_model: RagFactoryEmbedding, documents: list[Document]
) -> None:
    index = VectorStoreIndex.from_documents(documents, embed_model=embed_model, use_async=True)

    _assert_all_stamped(index)


def test_building_from_nodes_stamps_them(embed_model: RagFactoryEmbedding, scifact_mini: BeirDataset) -> None:
    nodes = corpus_nodes(scifact_mini, 5)

    index = VectorStoreIndex(nodes, embed_model=embed_model)

    _assert_all_stamped(index)
    assert _stamps(list(nodes)) == [BASE_STAMP] * 5  # the caller's nodes say it too


def test_insert_and_insert_nodes_stamp(
    embed_model: RagFactoryEmbedding, documents: list[Document], scifact_mini: BeirDataset
) -> None:
    index = VectorStoreIndex([], embed_model=embed_model)

    index.insert(documents[0])
    index.insert_nodes(corpus_nodes(scifact_mini, 3))

    assert len(_indexed_nodes(index)) >= 4
    _assert_all_stamped(index)


def test_async_insert_and_insert_nodes_stamp(
    embed_model: RagFactoryEmbedding, documents: list[Document], scifact_mini: BeirDataset
) -> None:
    index = VectorStoreIndex([], embed_model=embed_model)

    async def insert() -> None:
        await index.ainsert(documents[0])
        await index.ainsert_nodes(corpus_nodes(scifact_mini, 3))

    asyncio.run(insert())

    assert len(_indexed_nodes(index)) >= 4
    _assert_all_stamped(index)


@pytest.mark.parametrize("run", ["run", "arun"])
def test_an_ingestion_pipeline_into_an_index_stamps(
    run: str, embed_model: RagFactoryEmbedding, documents: list[Document]
) -> None:
    pipeline = IngestionPipeline(transformations=[SentenceSplitter(chunk_size=512), embed_model])

    nodes = pipeline.run(documents=documents) if run == "run" else asyncio.run(pipeline.arun(documents=documents))
    index = VectorStoreIndex(nodes, embed_model=embed_model)  # pre-embedded: the index embeds nothing again

    assert all(node.embedding is not None for node in nodes)
    _assert_all_stamped(index)


def test_nodes_already_embedded_by_another_model_are_refused(
    embed_model: RagFactoryEmbedding, scifact_mini: BeirDataset
) -> None:
    nodes = corpus_nodes(scifact_mini, 4)
    nodes[1].embedding = [0.1] * 384
    nodes[1].metadata[MODEL_ID_KEY] = "someone-elses-model"

    with pytest.raises(FailedPreconditionError, match="someone-elses-model"):
        VectorStoreIndex(nodes, embed_model=embed_model)


def test_other_embedding_models_are_left_to_llama_index(scifact_mini: BeirDataset) -> None:
    index = VectorStoreIndex(corpus_nodes(scifact_mini, 3), embed_model=MockEmbedding(embed_dim=8))

    assert all(MODEL_ID_KEY not in node.metadata for node in _indexed_nodes(index))


# -- queries use the index's version, until it is re-embedded ---------------------------------------


def _ranked(index: VectorStoreIndex, query: str = QUERY) -> list[str]:
    return [hit.node.node_id for hit in index.as_retriever(similarity_top_k=10).retrieve(query)]


def test_moving_the_alias_under_a_built_index(two_spaces: TwoSpaces, scifact_mini: BeirDataset) -> None:
    embed_model = RagFactoryEmbedding(address=two_spaces.address, model="minilm@production", timeout_s=60)
    nodes = corpus_nodes(scifact_mini, 60)
    index = VectorStoreIndex(nodes, embed_model=embed_model)
    before = _ranked(index)

    two_spaces.set_alias("production", "2.0.0")

    # The index keeps querying with the version that embedded it: same space, same results.
    assert _ranked(index) == before
    assert embed_model.last_served_by is not None
    assert (embed_model.last_served_by.model_id, embed_model.last_served_by.version) == ("minilm-onnx", "1.0.0")

    # Moving is explicit: a re-pinned embedding sees every node as stale, re-embeds them with progress...
    moved = embed_model.repinned()
    assert moved.pinned_model().model_id == CANDIDATE_ID
    assert len(find_stale_nodes(_indexed_nodes(index), moved.current_model_id())) == 60
    progress: list[tuple[int, int]] = []
    rebuilt = build_pinned_index(
        _indexed_nodes(index), moved, batch_size=25, progress=lambda done, total: progress.append((done, total))
    )

    # ...then the application switches to the new index, whose queries use the new version.
    assert progress == [(25, 60), (50, 60), (60, 60)]
    after = _ranked(rebuilt.index)
    assert moved.last_served_by is not None and moved.last_served_by.model_id == CANDIDATE_ID
    assert {stamped_pin(node).model_id for node in _indexed_nodes(rebuilt.index)} == {CANDIDATE_ID}  # type: ignore[union-attr]
    assert after != before  # another vector space ranks differently
    # Nothing of the old index was changed: it still answers from 1.0.0 with its own vectors.
    assert _ranked(index) == before
    assert {node.metadata[MODEL_ID_KEY] for node in _indexed_nodes(index)} == {"minilm-onnx"}


def test_an_index_reopened_from_its_nodes_is_queried_with_the_stamped_version(
    two_spaces: TwoSpaces, scifact_mini: BeirDataset
) -> None:
    nodes = corpus_nodes(scifact_mini, 10)
    VectorStoreIndex(nodes, embed_model=RagFactoryEmbedding(address=two_spaces.address, model="minilm"))
    two_spaces.set_alias("production", "2.0.0")

    reopened = RagFactoryEmbedding.for_nodes(nodes, address=two_spaces.address)

    assert reopened.pinned_model().reference == "minilm@1.0.0"
    vector = reopened.get_query_embedding(QUERY)
    assert len(vector) == 384 and reopened.last_served_by is not None
    assert reopened.last_served_by.model_id == "minilm-onnx"


@pytest.mark.parametrize(
    ("retire", "error", "state"),
    [("deprecate", ModelDeprecatedError, "was deprecated"), ("delete", ModelNotFoundError, "is no longer registered")],
)
def test_querying_an_index_whose_model_was_retired_says_to_re_embed(
    retire: str, error: type[RagFactoryError], state: str, two_spaces: TwoSpaces, scifact_mini: BeirDataset
) -> None:
    embed_model = RagFactoryEmbedding(address=two_spaces.address, model="minilm@2.0.0", timeout_s=60)
    index = VectorStoreIndex(corpus_nodes(scifact_mini, 5), embed_model=embed_model)

    getattr(two_spaces, retire)(CANDIDATE_ID)

    with pytest.raises(error) as caught:
        index.as_retriever().retrieve(QUERY)
    assert f"built with minilm@2.0.0 ({CANDIDATE_ID}), which {state}" in caught.value.message
    assert "Re-embed the index" in caught.value.message
    assert caught.value.metadata["model_id"] == CANDIDATE_ID


def test_an_unpinned_embedding_follows_the_alias(two_spaces: TwoSpaces) -> None:
    embed_model = RagFactoryEmbedding(address=two_spaces.address, model="minilm", pin_version=False)
    embed_model.get_query_embedding(QUERY)
    assert embed_model.last_served_by is not None and embed_model.last_served_by.model_id == "minilm-onnx"

    two_spaces.set_alias("production", CANDIDATE_ID)
    embed_model.get_query_embedding(QUERY)

    assert embed_model.last_served_by.model_id == CANDIDATE_ID
    with pytest.raises(FailedPreconditionError, match="pin_version is False"):
        embed_model.pinned_model()
    with pytest.raises(InvalidArgumentError, match="pin_version"):
        build_pinned_index([], embed_model)


# -- resumable builds ------------------------------------------------------------------------------


class Crash(RuntimeError):
    """Stands for the process dying half-way through a build."""


def _crash_after(batches: int) -> Callable[[int, int], None]:
    calls = {"n": 0}

    def progress(done: int, total: int) -> None:
        calls["n"] += 1
        if calls["n"] == batches:
            raise Crash(f"killed after {done} of {total}")

    return progress


def test_a_checkpoint_refuses_another_model_and_an_in_memory_store_cannot_resume(
    embed_model: RagFactoryEmbedding, sidecar_address: str, scifact_mini: BeirDataset, tmp_path: Path
) -> None:
    nodes = corpus_nodes(scifact_mini, 12)
    checkpoint = tmp_path / "build.jsonl"
    with pytest.raises(Crash):
        build_pinned_index(nodes, embed_model, checkpoint=checkpoint, batch_size=4, progress=_crash_after(1))

    with pytest.raises(FailedPreconditionError, match="no vector store"):
        build_pinned_index(nodes, embed_model, checkpoint=checkpoint, batch_size=4)
    other = RagFactoryEmbedding(address=sidecar_address, model="minilm@1.1.0")
    with pytest.raises(FailedPreconditionError, match="minilm-onnx-int8"):
        build_pinned_index(nodes, other, checkpoint=checkpoint, batch_size=4)


def test_a_pinned_index_wraps_an_index_built_with_a_pinned_embedding(
    embed_model: RagFactoryEmbedding, scifact_mini: BeirDataset
) -> None:
    index = VectorStoreIndex(corpus_nodes(scifact_mini, 3), embed_model=embed_model)

    pinned = PinnedIndex.from_index(index)

    assert (pinned.pin.model_id, pinned.ready) == ("minilm-onnx", True)
    with pytest.raises(InvalidArgumentError):
        PinnedIndex.from_index(
            VectorStoreIndex([TextNode(text="x", embedding=[0.0] * 8)], embed_model=MockEmbedding(embed_dim=8))
        )


def test_the_stamped_vectors_are_the_served_vectors(
    embed_model: RagFactoryEmbedding, scifact_mini: BeirDataset
) -> None:
    nodes = corpus_nodes(scifact_mini, 4)
    VectorStoreIndex(nodes, embed_model=embed_model)

    direct = embed_model.client.embed(
        [node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes], model="minilm@1.0.0"
    )
    np.testing.assert_allclose(np.array([node.embedding for node in nodes]), direct.vectors, atol=1e-5)

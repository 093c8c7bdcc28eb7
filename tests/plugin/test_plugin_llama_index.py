"""RagFactoryEmbedding inside LlamaIndex: a real index over SciFact, version stamps and stale-node re-embedding."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.schema import MetadataMode, TextNode

from plugin import (
    MODEL_ID_KEY,
    MODEL_VERSION_KEY,
    RagFactoryClient,
    RagFactoryEmbedding,
    assert_single_vector_space,
    embed_nodes,
    find_stale_nodes,
    reembed_stale_nodes,
)
from rag_factory.data.beir import BeirDataset
from rag_factory.errors import FailedPreconditionError, FallbackRefusedError, UnavailableError

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# SciFact query 148; its one relevant document (1084345) is among the first 40 of the bundled corpus.
QUERY = "Autophagy declines in aged organisms."
RELEVANT_DOC = "1084345"


@pytest.fixture
def embed_model(sidecar_address: str) -> RagFactoryEmbedding:
    return RagFactoryEmbedding(address=sidecar_address, timeout_s=60, embed_batch_size=16, load_plugins=False)


def _nodes(dataset: BeirDataset, count: int = 40) -> list[TextNode]:
    return [
        TextNode(id_=doc.doc_id, text=doc.as_text(), metadata={"title": doc.title})
        for doc in list(dataset.corpus.values())[:count]
    ]


def test_importing_the_plugin_needs_no_torch() -> None:
    code = (
        "import sys\n"
        "from llama_index.embeddings.rag_factory import RagFactoryEmbedding\n"
        "import plugin\n"
        "RagFactoryEmbedding(address='127.0.0.1:1')\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'sentence_transformers' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


def test_the_ecosystem_import_path_is_the_plugin_class() -> None:
    from llama_index.embeddings.rag_factory import RagFactoryEmbedding as FromNamespace

    assert FromNamespace is RagFactoryEmbedding


def test_construction_opens_no_connection_and_the_first_call_says_unavailable() -> None:
    embedding = RagFactoryEmbedding(address="127.0.0.1:1", timeout_s=5)

    with pytest.raises(UnavailableError, match="127.0.0.1:1"):
        embedding.get_query_embedding(QUERY)


def test_query_embedding_matches_the_client_and_remembers_who_served_it(
    embed_model: RagFactoryEmbedding, sidecar_address: str
) -> None:
    vector = embed_model.get_query_embedding(QUERY)

    expected = RagFactoryClient(sidecar_address, timeout_s=60).embed([QUERY]).vectors[0]
    np.testing.assert_allclose(vector, expected, atol=1e-5)
    assert embed_model.last_served_by is not None
    assert (embed_model.last_served_by.model_id, embed_model.last_served_by.version) == ("minilm-onnx", "1.0.0")


def test_sync_and_async_batch_embeddings_agree(embed_model: RagFactoryEmbedding) -> None:
    texts = [f"claim {i} about protein folding" for i in range(40)]

    sync = embed_model.get_text_embedding_batch(texts)
    async_ = asyncio.run(embed_model.aget_text_embedding_batch(texts))

    np.testing.assert_allclose(np.array(async_), np.array(sync), atol=1e-5)


def test_the_model_field_selects_the_served_model(sidecar_address: str) -> None:
    embedding = RagFactoryEmbedding(address=sidecar_address, model="minilm-onnx-int8", load_plugins=False)

    embedding.get_text_embedding("a claim")

    assert embedding.last_served_by is not None
    assert embedding.last_served_by.version == "1.1.0"


def test_a_model_that_fails_raises_the_core_error_in_the_host_app(damaged_sidecar: object) -> None:
    address = damaged_sidecar.address  # type: ignore[attr-defined]
    embedding = RagFactoryEmbedding(address=address, model="ft@1.1.0", timeout_s=60, load_plugins=False)

    with pytest.raises(FallbackRefusedError, match=r"'ft@1.1.0' .* the default model 'minilm-onnx'"):
        embedding.get_query_embedding(QUERY)
    assert embedding.last_served_by is None


def test_with_allow_fallback_the_default_model_answers_and_says_so(damaged_sidecar: object) -> None:
    address = damaged_sidecar.address  # type: ignore[attr-defined]
    embedding = RagFactoryEmbedding(
        address=address, model="ft@1.1.0", allow_fallback=True, timeout_s=60, load_plugins=False
    )

    vector = embedding.get_query_embedding(QUERY)

    default = RagFactoryClient(address, timeout_s=60).embed([QUERY], model="minilm-onnx").vectors[0]
    np.testing.assert_allclose(vector, default, atol=1e-5)
    served = embedding.last_served_by
    assert served is not None and (served.fallback, served.model_id) == (True, "minilm-onnx")


def test_vector_store_index_over_scifact_retrieves_the_relevant_document(
    embed_model: RagFactoryEmbedding, scifact_mini: BeirDataset
) -> None:
    nodes = embed_nodes(_nodes(scifact_mini), embed_model)
    index = VectorStoreIndex(nodes, embed_model=embed_model)

    hits = index.as_retriever(similarity_top_k=5).retrieve(QUERY)

    assert RELEVANT_DOC in [hit.node.node_id for hit in hits]
    assert {hit.node.metadata[MODEL_ID_KEY] for hit in hits} == {"minilm-onnx"}
    assert {hit.node.metadata[MODEL_VERSION_KEY] for hit in hits} == {"1.0.0"}


def test_vector_store_index_retrieves_asynchronously_too(
    embed_model: RagFactoryEmbedding, scifact_mini: BeirDataset
) -> None:
    nodes = asyncio.run(IngestionPipeline(transformations=[embed_model]).arun(nodes=_nodes(scifact_mini)))
    index = VectorStoreIndex(nodes, embed_model=embed_model)

    hits = asyncio.run(index.as_retriever(similarity_top_k=5).aretrieve(QUERY))

    assert RELEVANT_DOC in [hit.node.node_id for hit in hits]
    assert all(hit.node.metadata[MODEL_ID_KEY] == "minilm-onnx" for hit in hits)


def test_an_ingestion_pipeline_stamps_every_node(embed_model: RagFactoryEmbedding, scifact_mini: BeirDataset) -> None:
    nodes = IngestionPipeline(transformations=[embed_model]).run(nodes=_nodes(scifact_mini, 5))

    assert all(node.embedding is not None and len(node.embedding) == 384 for node in nodes)
    assert assert_single_vector_space(nodes) == "minilm-onnx"


def test_the_stamp_stays_out_of_the_embedded_and_llm_text(
    embed_model: RagFactoryEmbedding, scifact_mini: BeirDataset
) -> None:
    (node,) = embed_nodes(_nodes(scifact_mini, 1), embed_model)

    for mode in (MetadataMode.EMBED, MetadataMode.LLM):
        assert "rag_factory" not in node.get_content(metadata_mode=mode)
    assert MODEL_ID_KEY in node.get_content(metadata_mode=MetadataMode.ALL)


def test_reembedding_touches_exactly_the_nodes_stamped_by_another_model(
    embed_model: RagFactoryEmbedding, scifact_mini: BeirDataset
) -> None:
    nodes = embed_nodes(_nodes(scifact_mini, 10), embed_model)
    fresh = [list(node.get_embedding()) for node in nodes]
    # Simulate an index built before the default model changed: three nodes came from an older model.
    for node in nodes[:3]:
        node.metadata[MODEL_ID_KEY] = "minilm-previous"
        node.embedding = [0.0] * 384
    untouched = [node.embedding for node in nodes[3:]]

    assert [node.node_id for node in find_stale_nodes(nodes, "minilm-onnx")] == [n.node_id for n in nodes[:3]]
    assert reembed_stale_nodes(nodes, embed_model) == 3

    np.testing.assert_allclose(np.array([n.embedding for n in nodes[:3]]), np.array(fresh[:3]), atol=1e-5)
    assert all(node.embedding is before for node, before in zip(nodes[3:], untouched, strict=True))
    assert assert_single_vector_space(nodes) == "minilm-onnx"
    assert reembed_stale_nodes(nodes, embed_model) == 0


def test_switching_the_model_makes_every_node_stale(
    embed_model: RagFactoryEmbedding, sidecar_address: str, scifact_mini: BeirDataset
) -> None:
    nodes = embed_nodes(_nodes(scifact_mini, 4), embed_model)
    int8 = RagFactoryEmbedding(address=sidecar_address, model="minilm@1.1.0", load_plugins=False)

    assert reembed_stale_nodes(nodes, int8) == 4
    assert {node.metadata[MODEL_VERSION_KEY] for node in nodes} == {"1.1.0"}


def test_nodes_from_two_models_are_refused_together(
    embed_model: RagFactoryEmbedding, scifact_mini: BeirDataset
) -> None:
    nodes = embed_nodes(_nodes(scifact_mini, 4), embed_model)
    nodes[0].metadata[MODEL_ID_KEY] = "minilm-previous"

    with pytest.raises(FailedPreconditionError, match="minilm-previous"):
        assert_single_vector_space(nodes)

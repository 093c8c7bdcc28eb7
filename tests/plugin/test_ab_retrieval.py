"""A/B retrieval in a LlamaIndex app: one index per arm, each query searched in its serving model's index.

The sidecar's ``minilm@production`` is minilm-onnx 1.0.0 (mean pooling); the candidate minilm 2.0.0 is the
same network with CLS pooling, a genuinely different vector space. A query routed to one arm and searched
in the other arm's index would return plausible nonsense, which is what these tests rule out.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from llama_index.core.llms import MockLLM
from llama_index.core.response_synthesizers.no_text import NoText
from llama_index.core.schema import BaseNode, MetadataMode
from qdrant_client import QdrantClient

from plugin import (
    ROUTE_METADATA_KEY,
    ABQueryEngine,
    ABRetriever,
    ExperimentsClient,
    PinnedIndex,
    RagFactoryEmbedding,
    build_pinned_index,
)
from rag_factory.data.beir import BeirDataset
from rag_factory.errors import FailedPreconditionError, FallbackRefusedError
from rag_factory.models.embedding import CustomModelLoader, ModelConfig, ModelRegistry
from tests.plugin.conftest import CANDIDATE_ID, corpus_nodes, register_cls_candidate

pytestmark = pytest.mark.slow

TEST_QUERIES = Path(__file__).resolve().parents[1] / "data" / "scifact_test_queries.jsonl"
# Ramps never advance and no guardrail needs data: the split stays at 50 % for the whole test.
HOLD_AT_HALF = {"steps": [0.5, 1.0], "min_samples_per_step": 1_000_000, "min_step_duration_s": 3600.0}
FAST_PLAN = {"steps": [0.5, 1.0], "min_samples_per_step": 5, "min_step_duration_s": 0.0, "minimum_samples": 5}


@pytest.fixture
def spaces(private_registry_path: Path, onnx_export_dir: Path, sidecar_factory: Callable[..., object]) -> object:
    """A sidecar with the CLS candidate registered and a fast A/B ticker (ramps checked every 0.2 s)."""
    register_cls_candidate(private_registry_path, onnx_export_dir)
    return sidecar_factory(private_registry_path, **_fast_ticker(private_registry_path))


def _fast_ticker(registry_path: Path) -> dict[str, object]:
    embedding = {"default_model_id": "minilm-onnx", "registry_path": str(registry_path)}
    return {"models": {"embedding": {**embedding, "ab_testing": {"tick_interval_s": 0.2}}}}


def _embedding(address: str, model: str) -> RagFactoryEmbedding:
    return RagFactoryEmbedding(address=address, model=model, timeout_s=60, embed_batch_size=64, load_plugins=False)


def _ids(nodes: list[BaseNode] | list[object]) -> list[str]:
    return [hit.node.node_id for hit in nodes]  # type: ignore[attr-defined]


def _offline_top10(
    loader: CustomModelLoader, model_dir: Path, pooling: str, nodes: list[BaseNode], queries: list[str]
) -> list[list[str]]:
    """Top-10 node ids per query by exact search with the model loaded in-process, no sidecar involved."""
    model = loader.load_model(ModelConfig(model_path=str(model_dir), model_format="onnx", pooling_strategy=pooling))
    docs = np.asarray(model.encode([node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]))
    scores = np.asarray(model.encode(queries)) @ docs.T
    ids = [node.node_id for node in nodes]
    return [[ids[i] for i in np.argsort(-row, kind="stable")[:10]] for row in scores]


def _engine_without_llm(retriever: ABRetriever) -> ABQueryEngine:
    # NoText returns the retrieved nodes without calling an LLM; MockLLM only keeps LlamaIndex from
    # looking up its default (OpenAI) LLM, which NoText never calls.
    return ABQueryEngine.over(retriever, llm=MockLLM(), response_synthesizer=NoText(llm=MockLLM()))


def _wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_200_routed_queries_each_match_the_offline_top10_of_the_model_that_served_them(
    spaces: object, scifact_mini: BeirDataset, shared_loader: CustomModelLoader, onnx_export_dir: Path
) -> None:
    address: str = spaces.address  # type: ignore[attr-defined]
    nodes = corpus_nodes(scifact_mini, 400)
    queries = [json.loads(line) for line in TEST_QUERIES.read_text().splitlines()][:200]
    retriever = ABRetriever(
        build_pinned_index(nodes, _embedding(address, "minilm@production")), model="minilm@production"
    )
    candidate = build_pinned_index(nodes, _embedding(address, "minilm@2.0.0"))  # shadow index first...
    retriever.start_experiment("cls-at-half", candidate, **HOLD_AT_HALF)  # ...then traffic is routed
    texts = [query["text"] for query in queries]
    offline = {
        "minilm-onnx": _offline_top10(shared_loader, onnx_export_dir, "mean", nodes, texts),
        CANDIDATE_ID: _offline_top10(shared_loader, onnx_export_dir, "cls", nodes, texts),
    }

    served: Counter[tuple[str, str]] = Counter()
    mismatches = []
    for position, query in enumerate(queries):
        routed = retriever.retrieve_routed(query["text"], routing_key=f"user-{query['_id']}")
        served[(routed.route.arm, routed.route.model_id)] += 1
        assert routed.route.request_id and routed.route.experiment == "cls-at-half" and not routed.route.fallback
        if _ids(routed.nodes) != offline[routed.route.model_id][position]:
            mismatches.append((query["_id"], routed.route.model_id))

    assert mismatches == []
    assert set(served) == {("control", "minilm-onnx"), ("candidate", CANDIDATE_ID)}
    assert min(served.values()) >= 70, served  # about half each
    # The two spaces disagree on most queries, so a query searched in the wrong index would have shown.
    disagree = sum(a != b for a, b in zip(offline["minilm-onnx"], offline[CANDIDATE_ID], strict=True))
    assert disagree >= 150


def test_feedback_goes_to_the_arm_that_served_and_the_query_engine_carries_the_route(
    spaces: object, scifact_mini: BeirDataset
) -> None:
    address: str = spaces.address  # type: ignore[attr-defined]
    nodes = corpus_nodes(scifact_mini, 40)
    retriever = ABRetriever(
        build_pinned_index(nodes, _embedding(address, "minilm")), model="minilm", similarity_top_k=5
    )
    retriever.start_experiment(
        "feedback", build_pinned_index(nodes, _embedding(address, "minilm@2.0.0")), **HOLD_AT_HALF
    )
    engine = _engine_without_llm(retriever)

    recorded = set()
    for user in range(12):
        retriever.routing_key = f"user-{user}"
        response = engine.query("Autophagy declines in aged organisms.")
        route = response.metadata[ROUTE_METADATA_KEY]  # type: ignore[index]
        assert len(response.source_nodes) == 5 and route["arm"] in ("control", "candidate")
        experiment, model_id = retriever.record_feedback(response, clicked_rank=2, metrics={"relevant@1": 1.0})
        assert (experiment, model_id) == ("feedback", route["model_id"])
        recorded.add(model_id)

    assert recorded == {"minilm-onnx", CANDIDATE_ID}


def test_promotion_makes_the_candidate_index_serve_and_a_rollback_brings_the_control_back(
    spaces: object, scifact_mini: BeirDataset
) -> None:
    address: str = spaces.address  # type: ignore[attr-defined]
    nodes = corpus_nodes(scifact_mini, 30)
    control = build_pinned_index(nodes, _embedding(address, "minilm@production"))
    retriever = ABRetriever(control, model="minilm@production", similarity_top_k=5)
    candidate = build_pinned_index(nodes, _embedding(address, "minilm@2.0.0"))
    retriever.start_experiment("promote-me", candidate, **FAST_PLAN)

    for user in range(2000):
        retriever.retrieve_routed("Autophagy declines in aged organisms.", routing_key=f"user-{user}")
        experiment = retriever.sync()
        assert experiment is not None
        if experiment.status != "ramping":
            break
    assert experiment.status == "promoted", experiment.reason
    assert retriever.serving is candidate and retriever.retired is control and set(retriever.arms) == {CANDIDATE_ID}
    after = retriever.retrieve_routed("Autophagy declines in aged organisms.")
    assert (after.route.model_id, after.route.arm, after.route.fallback) == (CANDIDATE_ID, "", False)

    ExperimentsClient(control.embed_model.client).rollback("promote-me", reason="users complained")
    retriever.sync()

    assert retriever.serving is control and retriever.retired is None
    back = retriever.retrieve_routed("Autophagy declines in aged organisms.")
    assert (back.route.model_id, back.route.fallback) == ("minilm-onnx", False)


def test_a_rollback_drops_the_candidate_index(spaces: object, scifact_mini: BeirDataset) -> None:
    address: str = spaces.address  # type: ignore[attr-defined]
    nodes = corpus_nodes(scifact_mini, 20)
    control = build_pinned_index(nodes, _embedding(address, "minilm@production"))
    retriever = ABRetriever(control, model="minilm@production")
    retriever.start_experiment(
        "drop-me", build_pinned_index(nodes, _embedding(address, "minilm@2.0.0")), **HOLD_AT_HALF
    )

    ExperimentsClient(control.embed_model.client).rollback("drop-me")
    retriever.sync()

    assert set(retriever.arms) == {"minilm-onnx"} and retriever.serving is control


def test_an_unready_candidate_index_gets_no_traffic(spaces: object, scifact_mini: BeirDataset) -> None:
    address: str = spaces.address  # type: ignore[attr-defined]
    nodes = corpus_nodes(scifact_mini, 10)
    retriever = ABRetriever(build_pinned_index(nodes, _embedding(address, "minilm")), model="minilm")
    half_built = build_pinned_index(nodes, _embedding(address, "minilm@2.0.0"))
    half_built.ready = False

    with pytest.raises(FailedPreconditionError, match="not ready"):
        retriever.start_experiment("too-early", half_built, **HOLD_AT_HALF)
    assert retriever.experiment == "" and set(retriever.arms) == {"minilm-onnx"}


def test_a_query_routed_to_a_model_without_an_index_here_is_answered_from_the_serving_index(
    spaces: object, scifact_mini: BeirDataset
) -> None:
    address: str = spaces.address  # type: ignore[attr-defined]
    nodes = corpus_nodes(scifact_mini, 20)
    control = build_pinned_index(nodes, _embedding(address, "minilm@production"))
    retriever = ABRetriever(control, model="minilm@production", similarity_top_k=5)
    # Someone else started an experiment; this application never built the candidate's index.
    ExperimentsClient(control.embed_model.client).start(
        "elsewhere", model_name="minilm", candidate="minilm@2.0.0", steps=[1.0], min_samples_per_step=1_000_000
    )

    routed = retriever.retrieve_routed("Autophagy declines in aged organisms.", routing_key="user-1")

    assert routed.route.arm == "candidate" and routed.route.model_id == "minilm-onnx" and routed.route.fallback
    assert CANDIDATE_ID in routed.route.fallback_reason
    plain = control.index.as_retriever(similarity_top_k=5).retrieve("Autophagy declines in aged organisms.")
    assert _ids(routed.nodes) == _ids(plain)


def test_with_a_damaged_candidate_the_plain_embedding_raises_and_the_retriever_answers_from_the_control(
    private_registry_path: Path,
    onnx_export_dir: Path,
    sidecar_factory: Callable[..., object],
    scifact_mini: BeirDataset,
    tmp_path: Path,
) -> None:
    # The candidate's artifact differs by one file, so it is stored apart from the control's.
    candidate_dir = tmp_path / "candidate"
    candidate_dir.mkdir()
    for item in onnx_export_dir.iterdir():
        if item.is_file():
            (candidate_dir / item.name).write_bytes(item.read_bytes())
    (candidate_dir / "NOTE.txt").write_text("the fine-tuned candidate")
    register_cls_candidate(private_registry_path, candidate_dir)
    first = sidecar_factory(private_registry_path, **_fast_ticker(private_registry_path))
    address: str = first.address  # type: ignore[attr-defined]
    nodes = corpus_nodes(scifact_mini, 30)
    control = build_pinned_index(nodes, _embedding(address, "minilm@production"))
    candidate = build_pinned_index(nodes, _embedding(address, "minilm@2.0.0"))

    # Between the shadow build and the experiment, a restart finds the candidate's weights damaged.
    first.server.stop(grace=2).wait()  # type: ignore[attr-defined]
    first.services.close()  # type: ignore[attr-defined]
    registry = ModelRegistry(private_registry_path)
    weights = registry.artifact_path(CANDIDATE_ID, verify=False)
    assert weights is not None
    (weights / "model.onnx").write_bytes(b"damaged on disk")
    registry.close()
    sidecar_factory(private_registry_path, address=address, **_fast_ticker(private_registry_path))

    with pytest.raises(FallbackRefusedError, match=CANDIDATE_ID):
        _embedding(address, "minilm@2.0.0").get_query_embedding("Autophagy declines in aged organisms.")

    retriever = ABRetriever(control, model="minilm@production", similarity_top_k=5)
    retriever.start_experiment(
        "damaged", candidate, steps=[0.5, 1.0], min_samples_per_step=1_000_000, max_error_rate=0.05, minimum_samples=5
    )
    engine = _engine_without_llm(retriever)
    plain = _ids(control.index.as_retriever(similarity_top_k=5).retrieve("Autophagy declines in aged organisms."))
    routes = []
    for user in range(16):
        retriever.routing_key = f"user-{user}"
        response = engine.query("Autophagy declines in aged organisms.")
        routes.append(response.metadata[ROUTE_METADATA_KEY])  # type: ignore[index]
        assert _ids(response.source_nodes) == plain  # always the control's index, with the control's vector

    to_candidate = [route for route in routes if route["arm"] == "candidate"]
    assert to_candidate and all(r["fallback"] and r["model_id"] == "minilm-onnx" for r in to_candidate)
    assert all(not r["fallback"] for r in routes if r["arm"] == "control")
    # The sidecar counted the candidate's failures: its error guardrail rolls the experiment back.
    experiments = ExperimentsClient(control.embed_model.client)
    _wait_for(lambda: experiments.get("damaged").status == "rolled_back")
    assert "error" in experiments.get("damaged").reason


def test_a_shadow_build_into_qdrant_resumes_after_a_crash_without_duplicates(
    spaces: object, scifact_mini: BeirDataset, tmp_path: Path
) -> None:
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    address: str = spaces.address  # type: ignore[attr-defined]
    nodes = corpus_nodes(scifact_mini, 50)
    checkpoint = tmp_path / "candidate.checkpoint.jsonl"
    store_dir = tmp_path / "qdrant"
    progress: list[tuple[int, int]] = []

    def crash_after_two_batches(done: int, total: int) -> None:
        progress.append((done, total))
        if len(progress) == 2:
            raise KeyboardInterrupt("the shadow build was killed")

    client = QdrantClient(path=str(store_dir))
    with pytest.raises(KeyboardInterrupt):
        build_pinned_index(
            nodes,
            _embedding(address, "minilm@2.0.0"),
            vector_store=QdrantVectorStore(collection_name="candidate", client=client),
            checkpoint=checkpoint,
            batch_size=15,
            progress=crash_after_two_batches,
        )
    client.close()

    client = QdrantClient(path=str(store_dir))  # a new process opens the same store and checkpoint
    store = QdrantVectorStore(collection_name="candidate", client=client)
    resumed: list[tuple[int, int]] = []
    candidate = build_pinned_index(
        nodes,
        _embedding(address, "minilm@2.0.0"),
        vector_store=store,
        checkpoint=checkpoint,
        batch_size=15,
        progress=lambda done, total: resumed.append((done, total)),
    )

    assert progress == [(15, 50), (30, 50)] and resumed == [(45, 50), (50, 50)]  # only the rest was embedded
    assert client.count("candidate").count == 50
    in_memory = build_pinned_index(nodes, _embedding(address, "minilm@2.0.0"))
    query = "Autophagy declines in aged organisms."
    assert _ids(candidate.index.as_retriever(similarity_top_k=10).retrieve(query)) == _ids(
        in_memory.index.as_retriever(similarity_top_k=10).retrieve(query)
    )
    # The persistent index serves an experiment arm like the in-memory one.
    retriever = ABRetriever(build_pinned_index(nodes, _embedding(address, "minilm")), model="minilm")
    retriever.start_experiment("qdrant-arm", candidate, steps=[1.0], min_samples_per_step=1_000_000)
    routed = retriever.retrieve_routed(query, routing_key="user-1")
    assert (routed.route.arm, routed.route.model_id, routed.route.fallback) == ("candidate", CANDIDATE_ID, False)
    client.close()


def test_a_pinned_index_knows_its_version(spaces: object, scifact_mini: BeirDataset) -> None:
    address: str = spaces.address  # type: ignore[attr-defined]
    index = build_pinned_index(corpus_nodes(scifact_mini, 3), _embedding(address, "minilm@2.0.0"))

    assert isinstance(index, PinnedIndex)
    assert (index.pin.model_id, index.pin.reference) == (CANDIDATE_ID, "minilm@2.0.0")

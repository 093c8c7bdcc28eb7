"""Demo stage: A/B test base against fine-tuned through LlamaIndex, one index per arm, clicks from qrels."""

from __future__ import annotations

import time

from rag_factory.demo.context import DemoContext, section
from rag_factory.errors import FailedPreconditionError

STEPS = [0.2, 0.5, 1.0]
EXPERIMENT = "scifact-canary"


def ab_test_and_rollout(ctx: DemoContext) -> None:
    """Ramp the fine-tuned candidate on minilm@production; a click is a relevant doc in the top 5."""
    import grpc
    from llama_index.core.llms import MockLLM
    from llama_index.core.response_synthesizers.no_text import NoText

    from plugin import ROUTE_METADATA_KEY, ABQueryEngine, ABRetriever, PinnedIndex, RagFactoryEmbedding
    from plugin import build_pinned_index as build
    from rag_factory_contract.v1 import ab_pb2, ab_pb2_grpc

    section("6. A/B test through LlamaIndex: base (A) vs fine-tuned (B), canary ramp 20% -> 50% -> 100%")
    test = ctx.dataset.split("test")
    # Stage 5's index is pinned to the base model, which minilm@production names: it serves arm A.
    serving = PinnedIndex.from_index(ctx.index)
    retriever = ABRetriever(serving, model="minilm@production", similarity_top_k=5)
    # Shadow indexing: the candidate's own index, embedded by its exact version, is built before any traffic
    # goes to it (resumable from the checkpoint should the build be interrupted).
    candidate_embedding = RagFactoryEmbedding(
        address=ctx.sidecar_address, model=ctx.models["fine_tuned"], timeout_s=120
    )
    started = time.perf_counter()
    candidate = build(
        ctx.nodes, candidate_embedding, batch_size=100, checkpoint=ctx.workdir / "shadow-index.jsonl",
        progress=lambda done, total: print(f"  shadow index of {candidate_embedding.model}: {done}/{total} nodes"),
    )  # fmt: skip
    print(f"  shadow index ready in {time.perf_counter() - started:.1f} s, pinned to {candidate.pin}")
    retriever.start_experiment(
        EXPERIMENT, candidate, steps=STEPS, min_samples_per_step=30, min_step_duration_s=0.0, max_error_rate=0.05,
        minimum_samples=60,
    )  # fmt: skip
    # A LlamaIndex query engine; NoText returns the retrieved nodes, so no LLM is needed (MockLLM only keeps
    # LlamaIndex from looking up its default LLM).
    engine = ABQueryEngine.over(retriever, llm=MockLLM(), response_synthesizer=NoText(llm=MockLLM()))
    clicks = {"control": [0, 0], "candidate": [0, 0]}  # (clicks, requests) per arm
    queries = list(test)
    request = 0
    experiment = retriever.sync()
    while experiment is not None and experiment.status == "ramping" and request < 3000:
        qid = queries[request % len(queries)]
        retriever.routing_key = f"user-{request}"
        response = engine.query(ctx.dataset.queries[qid])
        route = response.metadata[ROUTE_METADATA_KEY] if response.metadata else {}
        top = [hit.node.node_id for hit in response.source_nodes]
        rank = next((i + 1 for i, d in enumerate(top) if d in test[qid]), 0)
        request += 1
        if not route.get("experiment"):  # the experiment ended between two queries
            experiment = retriever.sync()
            continue
        try:
            retriever.record_feedback(response, clicked_rank=rank)
        except FailedPreconditionError:
            experiment = retriever.sync()  # the rollout decided between this query and its outcome
            continue
        clicks[route["arm"]][0] += rank > 0
        clicks[route["arm"]][1] += 1
        if request % 20 == 0:
            time.sleep(0.6)  # let the sidecar's rollout check run
            before = experiment.status
            experiment = retriever.sync()
            if experiment is not None and (experiment.status != before or request % 100 == 0):
                print(f"  after {request} queries: split {experiment.traffic_split:.0%}, status {experiment.status}")
    for arm, (hits, total) in clicks.items():
        if total:
            print(f"  {arm:<9}: click-through@5 {hits / total:.3f} over {total} queries, each in its own index")
    with grpc.insecure_channel(ctx.sidecar_address) as channel:
        ab = ab_pb2_grpc.ABTestServiceStub(channel)  # type: ignore[no-untyped-call]
        analysis = ab.AnalyzeExperiment(ab_pb2.AnalyzeExperimentRequest(name=EXPERIMENT), timeout=60)
    engagement = next((m for m in analysis.metrics if m.name == "engagement"), None)
    if engagement is not None:
        print(
            f"  engagement A {engagement.mean_a:.3f} vs B {engagement.mean_b:.3f} (Holm p = {engagement.p_value:.2g})"
        )
    if experiment is not None:
        print(f"decision: {experiment.status} ({experiment.reason}); analysis winner: {analysis.winner}")
    print(f"minilm@production now -> {ctx.registry.get_alias('minilm', 'production').model_id}; "
          f"the retriever now serves the index pinned to {retriever.serving.pin}")  # fmt: skip

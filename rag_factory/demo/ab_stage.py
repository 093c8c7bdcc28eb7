"""Demo stage: A/B test base against fine-tuned in the sidecar, with clicks simulated from qrels."""

from __future__ import annotations

import time

import numpy as np

from rag_factory.data import bundled_dataset
from rag_factory.demo.context import DemoContext, section

STEPS = [0.2, 0.5, 1.0]


def ab_test_and_rollout(ctx: DemoContext) -> None:
    """Ramp the fine-tuned candidate on minilm@production; a click is a relevant doc in the top 5."""
    import grpc

    from rag_factory.experiments.arms import ARMS, arm_of, served_variant
    from rag_factory.models.evaluation.evaluator import evaluate_detailed
    from rag_factory_contract.v1 import ab_pb2, ab_pb2_grpc, common_pb2, embedding_pb2, embedding_pb2_grpc

    section("6. A/B test in the sidecar: base (A) vs fine-tuned (B), canary ramp 20% -> 50% -> 100%")
    dataset = ctx.dataset
    test = dataset.split("test")
    # Each arm retrieves over the corpus embedded by its own model: vector spaces are never mixed.
    # The vectors come from the evaluation cache, in the backend the sidecar serves (the model's
    # own). Stage 4's run stored them there, and the comparison report of stage 7 reads them too.
    offline = {
        ctx.models[role]: evaluate_detailed(
            ctx.models[role], bundled_dataset("scifact_mini"), registry=ctx.registry, loader=ctx.loader,
            backend="native", cache_dir=ctx.embedding_cache,
        )
        for role in ("base", "fine_tuned")
    }  # fmt: skip
    corpus = {model_id: evaluated.doc_vectors for model_id, evaluated in offline.items()}
    statuses = ", ".join(f"{role} {offline[ctx.models[role]].report.corpus_cache}" for role in ("base", "fine_tuned"))
    print(f"  corpus vectors: {statuses} (stored by stage 4's run)")
    doc_ids = offline[ctx.models["base"]].doc_ids  # both evaluations list the corpus in file order
    channel = grpc.insecure_channel(ctx.sidecar_address)
    ab = ab_pb2_grpc.ABTestServiceStub(channel)  # type: ignore[no-untyped-call]
    embed = embedding_pb2_grpc.EmbeddingServiceStub(channel)  # type: ignore[no-untyped-call]
    plan = ab_pb2.RampPlan(steps=STEPS, min_samples_per_step=30, min_step_duration_s=0.0, max_error_rate=0.05)
    ab.StartExperiment(ab_pb2.StartExperimentRequest(
        name="scifact-canary", model_name="minilm", candidate=ctx.models["fine_tuned"], plan=plan,
        minimum_samples=60), timeout=120)  # fmt: skip
    clicks = {arm: [0, 0] for arm in ARMS}  # (clicks, requests) per arm
    queries = list(test)
    status = ab_pb2.EXPERIMENT_STATUS_RAMPING
    request = 0
    while status == ab_pb2.EXPERIMENT_STATUS_RAMPING and request < 3000:
        qid = queries[request % len(queries)]
        # allow_fallback: this caller searches the index of whichever model served_by names, so the
        # default model's vectors are usable should an arm fail (without it, such a request would fail).
        response = embed.Embed(embedding_pb2.EmbedRequest(
            texts=[dataset.queries[qid]], model="minilm", routing_key=f"user-{request}", allow_fallback=True),
            timeout=60)  # fmt: skip
        vector = np.frombuffer(response.packed, dtype="<f4")
        ranking = np.argsort(-(corpus[response.served_by.model_id] @ vector))[:5]
        top = [doc_ids[i] for i in ranking]
        rank = next((i + 1 for i, d in enumerate(top) if d in test[qid]), 0)
        if not response.served_by.experiment:  # the experiment has ended; this request was not routed
            status = ab.GetExperiment(ab_pb2.GetExperimentRequest(name="scifact-canary"), timeout=10).experiment.status
            request += 1
            continue
        try:
            ab.RecordOutcome(ab_pb2.RecordOutcomeRequest(request_id=response.request_id, clicked_rank=rank), timeout=10)
        except grpc.RpcError as exc:
            # The rollout decided between this request and its outcome: late outcomes are refused.
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            status = ab.GetExperiment(ab_pb2.GetExperimentRequest(name="scifact-canary"), timeout=10).experiment.status
            request += 1
            continue
        arm = arm_of(response.served_by.variant == common_pb2.VARIANT_CANDIDATE)
        clicks[arm][0] += rank > 0
        clicks[arm][1] += 1
        request += 1
        if request % 20 == 0:
            time.sleep(0.6)  # let the sidecar's rollout check run
            experiment = ab.GetExperiment(ab_pb2.GetExperimentRequest(name="scifact-canary"), timeout=10).experiment
            if experiment.status != status or request % 100 == 0:
                state = ab_pb2.ExperimentStatus.Name(experiment.status)
                print(f"  after {request} requests: split {experiment.traffic_split:.0%}, "
                      f"samples A={experiment.samples_a} B={experiment.samples_b}, status {state}")  # fmt: skip
            status = experiment.status
    analysis = ab.AnalyzeExperiment(ab_pb2.AnalyzeExperimentRequest(name="scifact-canary"), timeout=60)
    experiment = ab.GetExperiment(ab_pb2.GetExperimentRequest(name="scifact-canary"), timeout=10).experiment
    for arm, (hits, total) in clicks.items():
        if total:
            print(f"  {served_variant(arm):<9}: click-through@5 {hits / total:.3f} over {total} requests")
    engagement = next((m for m in analysis.metrics if m.name == "engagement"), None)
    if engagement is not None:
        print(
            f"  engagement A {engagement.mean_a:.3f} vs B {engagement.mean_b:.3f} (Holm p = {engagement.p_value:.2g})"
        )
    print(f"decision: {ab_pb2.ExperimentStatus.Name(experiment.status)} ({experiment.reason}); "
          f"analysis winner: {analysis.winner}")  # fmt: skip
    print(f"minilm@production now -> {ctx.registry.get_alias('minilm', 'production').model_id}")
    channel.close()

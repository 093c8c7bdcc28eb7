"""Demo stage: evaluate base against fine-tuned on held-out queries and write the comparison report."""

from __future__ import annotations

from rag_factory.data import bundled_dataset
from rag_factory.demo.context import DemoContext, section


def write_report(ctx: DemoContext) -> None:
    """Paired significance tests, error analysis and plots, as report.html and report.md."""
    from rag_factory.models.evaluation.comparison import compare_models_detailed
    from rag_factory.models.evaluation.reports import write_comparison_report

    section("7. Comparison report: base vs fine-tuned on the held-out test queries")
    comparison = compare_models_detailed(
        ctx.models["base"], ctx.models["fine_tuned"], bundled_dataset("scifact_mini"),
        registry=ctx.registry, loader=ctx.loader, backend="native", cache_dir=ctx.embedding_cache,
    )  # fmt: skip
    report = comparison.report
    # Like for like: both models in their own fp32 backend, as stage 4 scored them and the sidecar
    # served them in stage 6; the corpus vectors come from the cache, where stage 4's run stored
    # them. Left to evaluation's default ("fastest"), the fine-tuned model would be scored through
    # its int8 export instead.
    sides = (("A", comparison.result_a.report), ("B", comparison.result_b.report))
    print("  " + ", ".join(f"{side} = {r.model_id} ({r.backend} / {r.precision})" for side, r in sides)
          + " (corpus vectors: " + ", ".join(f"{side} {r.corpus_cache}" for side, r in sides) + ")")  # fmt: skip
    for name in ("ndcg@10", "mrr@10", "recall@100"):
        test = report.tests.get(name)
        if test is not None:
            print(f"  {name:<10} A {test.mean_a:.4f}  B {test.mean_b:.4f}  diff {test.mean_diff:+.4f} "
                  f"[{test.ci_low:+.4f}, {test.ci_high:+.4f}]  t-test p {test.t_pvalue:.2g}")  # fmt: skip
    files = write_comparison_report(comparison, ctx.workdir / "report")
    print(f"report: {files.html}")
    print(f"        {files.markdown}")

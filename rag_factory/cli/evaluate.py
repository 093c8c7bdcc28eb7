"""The ``rag-factory eval``, ``compare`` and ``bench`` commands: evaluation, comparison and the benchmark suite."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rag_factory.errors import InvalidArgumentError
from rag_factory.models.embedding.loader import CustomModelLoader
from rag_factory.models.embedding.registry import ModelRegistry
from rag_factory.models.evaluation.embedding_cache import DEFAULT_EMBEDDING_CACHE_DIR
from rag_factory.models.evaluation.model_resolution import BACKEND_CHOICES
from rag_factory.models.evaluation.options import EvaluationOptions
from rag_factory.models.evaluation.plots import PROJECTION_METHODS
from rag_factory.models.evaluation.progress import EvaluationProgress
from rag_factory.models.evaluation.results import EvaluationReport
from rag_factory.retrieval.metrics import DEFAULT_METRICS
from rag_factory.storage import database_path

DEFAULT_REGISTRY = "./model_registry"
REGISTRY_ENV = "RAG_FACTORY_REGISTRY"
BENCH_METRICS = ("ndcg@10", "mrr@10", "recall@100")
DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Attach the ``eval``, ``compare`` and ``bench`` commands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--registry",
        metavar="PATH",
        help=f"registry directory (default: ${REGISTRY_ENV} or {DEFAULT_REGISTRY} when it exists)",
    )
    common.add_argument("--split", default="test", help="qrels split (default: test)")
    common.add_argument("--metrics", default=",".join(DEFAULT_METRICS), help="comma-separated, e.g. ndcg@10,map")
    common.add_argument("--k", default="", metavar="K,K", help="extra cut-offs for each metric, e.g. 1,5,10")
    common.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="fastest",
        help="fastest: int8 ONNX where the model has it (default); native; int8",
    )
    common.add_argument("--cache-dir", default=str(DEFAULT_EMBEDDING_CACHE_DIR), help="corpus-vector cache")
    common.add_argument("--no-cache", action="store_true", help="do not read or write cached corpus vectors")
    common.add_argument("--refresh-cache", action="store_true", help="re-embed the corpus and overwrite the cache")
    common.add_argument("--allow-dangling-qrels", action="store_true", help="drop judgements naming unknown ids")
    common.add_argument("--no-record", action="store_true", help="do not store results in the metric history")
    common.add_argument("--quiet", action="store_true", help="no progress bar")

    parser = subparsers.add_parser("eval", parents=[common], help="evaluate a model on a BEIR dataset split")
    parser.add_argument("--model", required=True, metavar="ID|PATH", help="model id, name@alias, or directory")
    parser.add_argument("--data", required=True, metavar="DIR", help="dataset directory in BEIR layout")
    parser.add_argument("--top-k", type=int, default=100, help="documents retrieved per query")
    parser.add_argument("--json", metavar="FILE", help="write the full report (every metric) as JSON")
    parser.add_argument("--report", metavar="DIR", help="write report.html and report.md into DIR")
    parser.add_argument(
        "--projection",
        action="append",
        choices=PROJECTION_METHODS,
        help="projections in the report (repeatable; default: umap and tsne)",
    )
    parser.set_defaults(func=run_eval)

    parser = subparsers.add_parser("compare", parents=[common], help="compare two models with paired tests")
    parser.add_argument("a", metavar="A", help="baseline: model id, name@alias, or directory")
    parser.add_argument("b", metavar="B", help="candidate: model id, name@alias, or directory")
    parser.add_argument("--data", required=True, metavar="DIR", help="dataset directory in BEIR layout")
    parser.add_argument("--examples", type=int, default=5, help="improved / regressed queries shown")
    parser.add_argument("--json", metavar="FILE", help="write the comparison as JSON")
    parser.add_argument("--report", metavar="DIR", help="write report.html and report.md into DIR")
    parser.add_argument(
        "--projection",
        action="append",
        choices=PROJECTION_METHODS,
        help="projections in the report (repeatable; default: umap and tsne)",
    )
    parser.set_defaults(func=run_compare)

    parser = subparsers.add_parser("bench", parents=[common], help="benchmark registered models on the datasets")
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="ID|PATH",
        help="model to run (repeatable; default: every active registered model)",
    )
    parser.add_argument(
        "--data",
        action="append",
        dest="datasets",
        metavar="DIR",
        help="dataset (repeatable; default: the bundled subset and ../shared/data/*)",
    )
    parser.add_argument("--json", metavar="FILE", help="write every cross-domain table as JSON")
    parser.set_defaults(func=run_bench)


class _ProgressBar:
    """One tqdm bar per evaluation stage, on stderr."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._key: tuple[str, str] | None = None

    def __call__(self, progress: EvaluationProgress) -> None:
        if not self.enabled or progress.stage == "done":
            self.close()
            return
        from tqdm import tqdm

        prefix = progress.message.split(":", 1)[0] + ": " if ":" in progress.message else ""
        key = (prefix, progress.stage)
        if key != self._key:
            self.close()
            self._key = key
            label = f"{prefix}{progress.stage.replace('_', ' ')}"
            self._bar = tqdm(total=progress.total, desc=label, file=sys.stderr, leave=False, dynamic_ncols=True)
        self._bar.n = progress.done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar, self._key = None, None


def _open_registry(args: argparse.Namespace) -> ModelRegistry | None:
    # The environment is read here, at the process edge. A default registry is used only if it exists,
    # so evaluating a directory never creates ./model_registry as a side effect.
    path = args.registry or os.environ.get(REGISTRY_ENV)
    if path is None and Path(DEFAULT_REGISTRY).is_dir():
        path = DEFAULT_REGISTRY
    return ModelRegistry(path) if path else None


def _k_values(text: str) -> list[int]:
    values = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if not part.lstrip("-").isdigit():
            raise InvalidArgumentError(f"--k takes integers such as 1,5,10; got {part!r}")
        values.append(int(part))
    return values


def _options(args: argparse.Namespace, registry: ModelRegistry | None) -> EvaluationOptions:
    return EvaluationOptions(
        split=args.split,
        registry=registry,
        loader=CustomModelLoader(),
        metrics=[m for m in args.metrics.split(",") if m.strip()],
        k_values=_k_values(args.k),
        backend=args.backend,
        cache_dir=None if args.no_cache else args.cache_dir,
        allow_dangling_qrels=args.allow_dangling_qrels,
    )


def _write_json(path: str, payload: Any) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"json: {path}")


def _record(report: EvaluationReport, registry: ModelRegistry | None, args: argparse.Namespace) -> None:
    from rag_factory.models.evaluation.recording import record_evaluation

    if registry is not None and not args.no_record and record_evaluation(report, registry):
        print(f"recorded in the metric history of {database_path(registry.path)}")


def _history(registry: ModelRegistry | None, reports: Sequence[EvaluationReport]) -> list[Any]:
    if registry is None:
        return []
    from rag_factory.models.monitoring.metric_history import MetricHistory

    history = MetricHistory.for_registry(registry)
    try:
        names = {r.model_name for r in reports if r.model_source == "registry"}
        first = reports[0]
        return [
            p
            for name in sorted(names)
            for p in history.query(model_name=name, dataset=first.dataset, split=first.split)
        ]
    finally:
        history.close()


def _print_evaluation(report: EvaluationReport) -> None:
    print(
        f"model:   {report.label} ({report.model_id})  backend {report.backend}/{report.precision} "
        f"({report.weights} on {report.runtime})"
    )
    print(f"dataset: {report.dataset}/{report.split}  {report.n_queries} queries, {report.n_documents} documents")
    print(
        f"corpus:  {report.corpus_cache} ({report.documents_embedded} embedded)  total {report.timings.total_s:.1f} s"
    )
    for name, value in {**report.metrics, **report.custom_metrics}.items():
        print(f"  {name:<24} {value:.4f}")
    for warning in report.warnings:
        print(f"warning: {warning}")


def run_eval(args: argparse.Namespace) -> int:
    """``rag-factory eval``: evaluate, print the metrics, optionally write JSON and a report."""
    from rag_factory.models.evaluation.evaluator import evaluate_detailed
    from rag_factory.models.evaluation.reports import write_evaluation_report

    registry = _open_registry(args)
    progress = _ProgressBar(not args.quiet)
    try:
        result = evaluate_detailed(
            args.model, args.data, _options(args, registry), top_k=args.top_k, on_progress=progress
        )
        progress.close()
        report = result.report
        _print_evaluation(report)
        _record(report, registry, args)
        if args.json:
            _write_json(args.json, report.model_dump(mode="json"))
        if args.report:
            files = write_evaluation_report(
                result,
                args.report,
                history=_history(registry, [report]),
                projections=args.projection or PROJECTION_METHODS,
            )
            print(f"report: {files.html}")
    finally:
        progress.close()
        if registry is not None:
            registry.close()
    return 0


def run_compare(args: argparse.Namespace) -> int:
    """``rag-factory compare A B``: paired significance tests and error analysis."""
    from rag_factory.models.evaluation.comparison import compare_models_detailed
    from rag_factory.models.evaluation.reports import write_comparison_report

    registry = _open_registry(args)
    progress = _ProgressBar(not args.quiet)
    try:
        result = compare_models_detailed(
            args.a, args.b, args.data, _options(args, registry), n_examples=args.examples, on_progress=progress
        )
        progress.close()
        summary = result.report
        a, b = summary.model_a, summary.model_b
        print(f"A: {a.label} ({a.backend}/{a.precision})   B: {b.label} ({b.backend}/{b.precision})")
        print(f"dataset: {a.dataset}/{a.split}, {a.n_queries} paired queries; differences are B - A")
        print(
            f"{'metric':<16}{'A':>8}{'B':>8}{'delta':>9}  {'95% CI':<19}{'t p':>8}{'wilcoxon p':>11}{'holm p':>8}  sig"
        )
        for name, test in summary.tests.items():
            print(
                f"{name:<16}{test.mean_a:>8.4f}{test.mean_b:>8.4f}{test.mean_diff:>+9.4f}  "
                f"[{test.ci_low:+.4f}, {test.ci_high:+.4f}]{test.t_pvalue:>8.4f}{test.wilcoxon_pvalue:>11.4f}"
                f"{summary.holm_pvalues[name]:>8.4f}  {'yes' if summary.significant[name] else 'no'}"
            )
        counts_b = summary.failures_b.counts
        failures = ", ".join(f"{k} {v} -> {counts_b.get(k, 0)}" for k, v in summary.failures_a.counts.items())
        print(f"failure categories (A -> B): {failures}")
        changes = summary.error_analysis
        print(f"{changes.metric}: {changes.n_improved} queries improved, {changes.n_regressed} regressed")
        for title, items in (("improved", changes.improved), ("regressed", changes.regressed)):
            for change in items:
                ranks = ", ".join(f"{d.doc_id} rank {d.rank_a or '-'} -> {d.rank_b or '-'}" for d in change.relevant)
                print(f"  {title} {change.delta:+.3f} q{change.query_id}: {change.query[:70]!r} ({ranks})")
        for report in (a, b):
            _record(report, registry, args)
        if args.json:
            _write_json(args.json, summary.model_dump(mode="json"))
        if args.report:
            files = write_comparison_report(
                result,
                args.report,
                history=_history(registry, [a, b]),
                projections=args.projection or PROJECTION_METHODS,
            )
            print(f"report: {files.html}")
    finally:
        progress.close()
        if registry is not None:
            registry.close()
    return 0


def default_bench_datasets() -> list[Path]:
    """The bundled SciFact subset, then SciFact and PubMedQA-L from ``../shared/data`` when present."""
    from rag_factory.data import bundled_dataset

    shared = [Path("..") / "shared" / "data", Path(__file__).resolve().parents[2].parent / "shared" / "data"]
    found = [bundled_dataset("scifact_mini")]
    for name in ("scifact", "pubmedqa-l"):
        for root in shared:
            if (root / name / "corpus.jsonl").is_file():
                found.append((root / name).resolve())
                break
    return found


def run_bench(args: argparse.Namespace) -> int:
    """``rag-factory bench``: every model on every benchmark dataset, as one table per model."""
    from rag_factory.models.evaluation.comparison import cross_domain

    registry = _open_registry(args)
    progress = _ProgressBar(not args.quiet)
    try:
        models = args.models or []
        if not models and registry is not None:
            models = [r.model_id for r in registry.list_records(include_deprecated=False)]
        models = models or [DEFAULT_BASE_MODEL]
        datasets = [Path(d) for d in args.datasets] if args.datasets else default_bench_datasets()
        # The benchmark keeps each dataset's own judgements and the plain cut-offs: no --k, no dropped qrels.
        options = replace(_options(args, registry), k_values=(), allow_dangling_qrels=False)
        if args.metrics == ",".join(DEFAULT_METRICS):
            options = replace(options, metrics=list(BENCH_METRICS))
        print(f"benchmark: {len(models)} model(s) x {len(datasets)} dataset(s): {', '.join(d.name for d in datasets)}")
        tables = []
        for model in models:
            table = cross_domain(model, datasets, options, on_progress=progress)
            progress.close()
            print(f"\n{table.model_label} ({table.model_id})\n{table.to_markdown()}")
            tables.append(table.model_dump(mode="json"))
        if args.json:
            _write_json(args.json, tables)
    finally:
        progress.close()
        if registry is not None:
            registry.close()
    return 0

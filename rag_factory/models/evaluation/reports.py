"""Markdown and self-contained HTML reports of an evaluation or of two versions side by side.

A report folder holds ``report.md`` (images under ``plots/``) and ``report.html`` (the same images
embedded as base64 data URIs, so the one file can be mailed or archived).
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rag_factory.errors import RagFactoryError
from rag_factory.models.evaluation import plots
from rag_factory.models.evaluation.comparison import ComparisonResult, FailureSummary
from rag_factory.models.evaluation.error_analysis import QueryChange
from rag_factory.models.evaluation.plots import ProjectionMethod
from rag_factory.models.evaluation.results import EvaluationReport, EvaluationResult
from rag_factory.models.monitoring.metric_history import MetricPoint

logger = logging.getLogger(__name__)

MAX_PLOT_QUERIES = 150
MAX_PLOT_DOCUMENTS = 300
_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2rem auto; max-width: 1180px;
       color: #1f2328; line-height: 1.45; padding: 0 1rem; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; }
h2 { margin-top: 2rem; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .92rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.up { color: #1a7f37; font-weight: 600; } .down { color: #cf222e; font-weight: 600; }
img { max-width: 100%; border: 1px solid #d0d7de; margin: .5rem 0; } .note { color: #59636e; font-size: .9rem; }
"""


@dataclass(frozen=True)
class ReportFiles:
    """Where a report was written."""

    folder: Path
    html: Path
    markdown: Path
    images: list[Path]


@dataclass
class _Report:
    """Builds the Markdown and the HTML of one report from the same calls."""

    title: str
    md: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    images: dict[str, bytes] = field(default_factory=dict)

    def heading(self, text: str, level: int = 2) -> None:
        self.md.append(f"{'#' * level} {text}\n")
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str, *, note: bool = False) -> None:
        self.md.append(f"{'_' if note else ''}{text}{'_' if note else ''}\n")
        self.html.append(f"<p{' class=note' if note else ''}>{html.escape(text)}</p>")

    def table(
        self, header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1, *, colour: bool = False
    ) -> None:
        """A table; with ``colour``, signed cells are green (+) or red (−): use it where higher is better."""

        def md_cell(value: str) -> str:
            return value.replace("|", "\\|").replace("\n", " ")

        self.md.append("| " + " | ".join(map(md_cell, header)) + " |")
        self.md.append("|" + "---|" * len(header))
        self.md.extend("| " + " | ".join(map(md_cell, row)) + " |" for row in rows)
        self.md.append("")
        parts = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
        for row in rows:
            cells = []
            for position, value in enumerate(row):
                classes = ["num"] if position >= numeric_from and _looks_numeric(value) else []
                if colour and value.startswith("+") and position >= numeric_from:
                    classes.append("up")
                elif colour and value.startswith("−") and position >= numeric_from:
                    classes.append("down")
                attr = f" class='{' '.join(classes)}'" if classes else ""
                cells.append(f"<td{attr}>{html.escape(value)}</td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        self.html.append("".join(parts) + "</table>")

    def image(self, name: str, png: bytes, alt: str) -> None:
        self.images[name] = png
        self.md.append(f"![{alt}](plots/{name})\n")
        encoded = base64.b64encode(png).decode("ascii")
        self.html.append(f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{encoded}'>")

    def write(self, folder: str | Path) -> ReportFiles:
        root = Path(folder)
        (root / "plots").mkdir(parents=True, exist_ok=True)
        images = []
        for name, png in self.images.items():
            (root / "plots" / name).write_bytes(png)
            images.append(root / "plots" / name)
        markdown = root / "report.md"
        markdown.write_text(f"# {self.title}\n\n" + "\n".join(self.md) + "\n", encoding="utf-8")
        page = root / "report.html"
        page.write_text(
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>" + "\n".join(self.html) + "</body></html>\n",
            encoding="utf-8",
        )
        return ReportFiles(folder=root, html=page, markdown=markdown, images=images)


def _looks_numeric(value: str) -> bool:
    return bool(value) and (value[0].isdigit() or value[0] in "+−-.") and any(c.isdigit() for c in value)


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _signed(value: float, digits: int = 4) -> str:
    # A real minus sign, so the HTML can colour regressions.
    return f"+{value:.{digits}f}" if value > 0 else f"−{abs(value):.{digits}f}" if value < 0 else f"{0:.{digits}f}"


def _pvalue(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _plot_sample(result: EvaluationResult, seed: int = 0) -> dict[str, npt.NDArray[np.float32]]:
    """Queries, their relevant documents and other documents, capped so projections stay quick."""
    rng = np.random.default_rng(seed)
    query_rows = np.arange(len(result.query_ids))
    if len(query_rows) > MAX_PLOT_QUERIES:
        query_rows = np.sort(rng.choice(query_rows, MAX_PLOT_QUERIES, replace=False))
    row_of = {doc: row for row, doc in enumerate(result.doc_ids)}
    chosen = [result.query_ids[i] for i in query_rows]
    relevant = sorted({row_of[d] for q in chosen for d, g in result.qrels[q].items() if g > 0 and d in row_of})
    others = np.setdiff1d(np.arange(len(result.doc_ids)), relevant)
    if len(others) > MAX_PLOT_DOCUMENTS:
        others = np.sort(rng.choice(others, MAX_PLOT_DOCUMENTS, replace=False))
    return {
        "query": result.query_vectors[query_rows],
        "relevant document": result.doc_vectors[relevant],
        "other document": result.doc_vectors[others],
    }


def _add_projections(
    report: _Report, panels: dict[str, dict[str, npt.NDArray[np.float32]]], methods: Sequence[ProjectionMethod]
) -> None:
    for method in methods:
        name = plots.METHOD_TITLES[method]
        try:
            png = plots.projection_png(
                panels, method=method, title=f"{name} projection of queries and documents", legend_title="label"
            )
        except RagFactoryError as exc:
            logger.warning("skipping the %s projection: %s", name, exc.message)
            report.paragraph(f"{name} projection skipped: {exc.message}", note=True)
            continue
        report.image(f"projection_{method}.png", png, f"{name} projection of queries and documents")


def _add_history(report: _Report, history: Sequence[MetricPoint], metrics: Sequence[str]) -> None:
    if not history:
        report.paragraph("No metric history recorded yet for these models.", note=True)
        return
    shown = [m for m in metrics if any(p.metric == m for p in history)][:4]
    if shown:
        report.image("history_versions.png", plots.history_png(history, shown, x="version"), "metrics by version")
        report.image(
            "history_time.png",
            plots.history_png(history, shown, x="time", title="Metric history over time"),
            "metrics over time",
        )


def _model_rows(reports: Sequence[EvaluationReport]) -> list[list[str]]:
    def row(label: str, values: Sequence[str]) -> list[str]:
        return [label, *values]

    return [
        row("model id", [r.model_id for r in reports]),
        row("version", [r.model_version or "(path)" for r in reports]),
        row("backend / precision", [f"{r.backend} / {r.precision}" for r in reports]),
        row("weights", [r.weights for r in reports]),
        row("dimension / max tokens", [f"{r.embedding_dim} / {r.max_seq_length}" for r in reports]),
        row("corpus vectors", [f"{r.corpus_cache} ({r.documents_embedded} embedded)" for r in reports]),
        row("evaluation time", [f"{r.timings.total_s:.1f} s" for r in reports]),
    ]


def _space_rows(reports: Sequence[EvaluationReport]) -> list[list[str]]:
    names = {
        "isotropy": "isotropy (↑ isotropic)",
        "uniformity": "uniformity (↓ more uniform)",
        "alignment": "alignment (↓ closer pairs)",
        "mean_cosine": "mean pairwise cosine",
        "effective_rank": "effective rank",
        "query_document_silhouette": "query/document silhouette",
    }
    rows = []
    for key, label in names.items():
        values = [getattr(r.embedding_space, key) if r.embedding_space else None for r in reports]
        cells = [_num(v) for v in values]
        if len(values) == 2 and None not in values:
            cells.append(_signed(float(values[1]) - float(values[0])))  # type: ignore[arg-type]
        rows.append([label, *cells])
    return rows


def _header(report: _Report, first: EvaluationReport) -> None:
    report.paragraph(
        f"Dataset {first.dataset} (split {first.split}): {first.n_queries} queries, {first.n_documents} documents; "
        f"content sha256 {first.dataset_hash[:16]}…; exact search, top {first.top_k}; "
        f"evaluated {first.evaluated_at:%Y-%m-%d %H:%M} UTC."
    )


def write_evaluation_report(
    result: EvaluationResult,
    folder: str | Path,
    *,
    history: Sequence[MetricPoint] = (),
    projections: Sequence[ProjectionMethod] = plots.PROJECTION_METHODS,
) -> ReportFiles:
    """Write ``report.md`` and ``report.html`` for one evaluation.

    Args:
        result: From :func:`evaluator.evaluate_detailed`.
        folder: Output folder (created; files in it are replaced).
        history: Metric history of the model, plotted by version and over time.
        projections: Which 2-D projections to draw (``"umap"``, ``"tsne"``); empty for none.

    Returns:
        The paths written.
    """
    evaluation = result.report
    report = _Report(f"Evaluation of {evaluation.label} on {evaluation.dataset}/{evaluation.split}")
    _header(report, evaluation)
    report.heading("Model")
    report.table(["", evaluation.label], _model_rows([evaluation]), numeric_from=99)
    report.heading("Retrieval metrics")
    report.table(["metric", "value"], [[n, _num(v)] for n, v in evaluation.metrics.items()])
    if evaluation.custom_metrics:
        report.heading("Custom metrics (plugins)")
        report.table(["metric", "value"], [[n, _num(v)] for n, v in evaluation.custom_metrics.items()])
    report.heading("Embedding space")
    report.table(["quantity", "value"], _space_rows([evaluation]))
    _add_projections(report, {evaluation.label: _plot_sample(result)}, projections)
    report.heading("Metric history")
    _add_history(report, history, list(evaluation.metrics))
    for warning in evaluation.warnings:
        report.paragraph(f"Warning: {warning}", note=True)
    return report.write(folder)


def _failure_rows(a: FailureSummary, b: FailureSummary) -> list[list[str]]:
    rows = [
        [name, str(count), str(b.counts.get(name, 0)), _signed(b.counts.get(name, 0) - count, 0)]
        for name, count in a.counts.items()
    ]
    rows.append(
        [
            "any failure",
            str(a.failing_queries),
            str(b.failing_queries),
            _signed(b.failing_queries - a.failing_queries, 0),
        ]
    )
    return rows


def _add_change(report: _Report, change: QueryChange) -> None:
    report.paragraph(
        f"Query {change.query_id}: “{change.query}” — A {change.value_a:.3f} → B {change.value_b:.3f} "
        f"({_signed(change.delta, 3)})"
    )
    relevant = {doc.doc_id for doc in change.relevant}
    report.table(
        ["relevant document", "grade", "rank A", "rank B"],
        [
            [f"{d.doc_id}: {d.snippet}", str(d.grade), str(d.rank_a or "—"), str(d.rank_b or "—")]
            for d in change.relevant
        ],
        numeric_from=1,
    )
    depth = max(len(change.top_a), len(change.top_b))
    rows = []
    for rank in range(depth):
        cells = []
        for top in (change.top_a, change.top_b):
            doc = top[rank] if rank < len(top) else ""
            cells.append(f"{doc} ✓" if doc in relevant else doc)
        rows.append([str(rank + 1), *cells])
    report.table(["rank", "A top-k (✓ relevant)", "B top-k (✓ relevant)"], rows, numeric_from=99)


def write_comparison_report(
    comparison: ComparisonResult,
    folder: str | Path,
    *,
    history: Sequence[MetricPoint] = (),
    projections: Sequence[ProjectionMethod] = plots.PROJECTION_METHODS,
) -> ReportFiles:
    """Write ``report.md`` and ``report.html`` comparing two versions side by side.

    Contents: both models and backends, a metric table with deltas, bootstrap CIs and p-values
    (t-test, Wilcoxon, Holm-corrected), custom metrics, embedding-space metrics, the per-query
    scatter, projections of each model's space, failure categories, the most improved and regressed
    queries, and the metric history.

    Args:
        comparison: From :func:`comparison.compare_models_detailed`.
        folder: Output folder (created; files in it are replaced).
        history: Metric history of both models.
        projections: Which 2-D projections to draw; empty for none.

    Returns:
        The paths written.
    """
    summary = comparison.report
    a, b = summary.model_a, summary.model_b
    report = _Report(f"{b.label} (B) against {a.label} (A) on {a.dataset}/{a.split}")
    _header(report, a)
    report.heading("Models")
    report.table(["", f"A: {a.label}", f"B: {b.label}"], _model_rows([a, b]), numeric_from=99)

    report.heading("Retrieval metrics")
    rows = []
    for name, test in summary.tests.items():
        rows.append([
            name, _num(test.mean_a), _num(test.mean_b), _signed(test.mean_diff),
            f"[{_signed(test.ci_low)}, {_signed(test.ci_high)}]", _pvalue(test.t_pvalue),
            _pvalue(test.wilcoxon_pvalue), _pvalue(summary.holm_pvalues[name]),
            "yes" if summary.significant[name] else "no", f"{test.wins}/{test.losses}/{test.ties}",
        ])  # fmt: skip
    report.table(
        ["metric", "A", "B", "Δ (B − A)", "95% CI of Δ", "t-test p", "Wilcoxon p", "Holm p", "significant", "W/L/T"],
        rows,
        colour=True,
    )
    report.paragraph(
        f"Paired over the same {a.n_queries} queries. CI: percentile bootstrap of the mean difference. "
        f"Significant: Holm-corrected t-test p ≤ {summary.alpha}. W/L/T: queries where B wins, loses, ties.",
        note=True,
    )
    metric = summary.error_metric
    report.image(
        "per_query.png",
        plots.per_query_png(a.per_query[metric], b.per_query[metric], metric=metric, label_a=a.label, label_b=b.label),
        f"per-query {metric} of B against A",
    )
    custom = sorted(set(a.custom_metrics) | set(b.custom_metrics))
    if custom:
        report.heading("Custom metrics (plugins)")
        report.table(
            ["metric", "A", "B", "Δ"],
            [
                [n, _num(a.custom_metrics.get(n)), _num(b.custom_metrics.get(n)),
                 _signed(b.custom_metrics[n] - a.custom_metrics[n]) if n in a.custom_metrics and n in b.custom_metrics
                 else "—"]
                for n in custom
            ],
            colour=True,
        )  # fmt: skip

    report.heading("Embedding space")
    report.table(["quantity", "A", "B", "Δ"], _space_rows([a, b]))
    sample_a, sample_b = _plot_sample(comparison.result_a), _plot_sample(comparison.result_b)
    _add_projections(report, {f"A: {a.label}": sample_a, f"B: {b.label}": sample_b}, projections)

    report.heading("Failure categories")
    report.table(["category", "A", "B", "Δ"], _failure_rows(summary.failures_a, summary.failures_b))
    changes = summary.error_analysis
    report.heading(f"Most improved queries ({changes.n_improved} improved on {metric})")
    for change in changes.improved:
        _add_change(report, change)
    report.heading(f"Most regressed queries ({changes.n_regressed} regressed on {metric})")
    for change in changes.regressed:
        _add_change(report, change)
    if not changes.improved and not changes.regressed:
        report.paragraph("No query changed.", note=True)

    report.heading("Metric history")
    _add_history(report, history, list(summary.tests))
    for label, evaluation in (("A", a), ("B", b)):
        for warning in evaluation.warnings:
            report.paragraph(f"Warning ({label}): {warning}", note=True)
    return report.write(folder)

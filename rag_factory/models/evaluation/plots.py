"""Plots for reports as PNG bytes: UMAP / t-SNE projections, metric history and per-query comparisons.

Figures are drawn with matplotlib's object API on the Agg canvas, so nothing touches pyplot's global
state or needs a display. Every plot has a title, labelled axes and a legend.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from rag_factory.errors import FailedPreconditionError, InvalidArgumentError, describe_choices

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from rag_factory.models.monitoring.metric_history import MetricPoint

ProjectionMethod = Literal["umap", "tsne"]
PROJECTION_METHODS: tuple[ProjectionMethod, ...] = ("umap", "tsne")
HistoryAxis = Literal["version", "time"]

_DPI = 110
_MARKERS = ("o", "^", "s", "D", "v", "P", "X", "*")
METHOD_TITLES = {"umap": "UMAP", "tsne": "t-SNE"}

Groups = Mapping[str, npt.NDArray[np.floating]]
"""Label (legend entry) -> ``(n, dim)`` vectors of that group."""


def _figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise FailedPreconditionError("plots need matplotlib: pip install matplotlib") from exc
    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def project_2d(vectors: npt.ArrayLike, method: ProjectionMethod = "tsne", *, seed: int = 0) -> npt.NDArray[np.float64]:
    """Project vectors to 2-D with UMAP (McInnes et al. 2018) or t-SNE (van der Maaten & Hinton 2008).

    Both use cosine distance, the similarity the retrieval itself uses. t-SNE's perplexity and
    UMAP's neighbour count shrink for small inputs so that any ``n >= 4`` works.

    Args:
        vectors: ``(n, dim)`` embeddings, ``n >= 4``.
        method: ``"umap"`` or ``"tsne"``.
        seed: Random state, so the same input gives the same picture.

    Returns:
        ``(n, 2)`` coordinates.

    Raises:
        InvalidArgumentError: An unknown method, or fewer than 4 vectors.
        FailedPreconditionError: ``umap`` without umap-learn installed.
    """
    matrix = np.asarray(vectors, dtype=np.float64)
    if method not in PROJECTION_METHODS:
        raise InvalidArgumentError(f"unknown projection {method!r}; valid: {describe_choices(PROJECTION_METHODS)}")
    if matrix.ndim != 2 or matrix.shape[0] < 4:
        raise InvalidArgumentError(f"a projection needs an (n, dim) array with n >= 4, got shape {matrix.shape}")
    # One thread: these projections are small, and OpenMP pools that compete with torch's (or another
    # process's) threads for 2 cores were measured 10-50x slower than a single thread.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _project(matrix, method, seed)


def _project(matrix: npt.NDArray[np.float64], method: ProjectionMethod, seed: int) -> npt.NDArray[np.float64]:
    n = matrix.shape[0]
    if method == "tsne":
        from sklearn.manifold import TSNE

        tsne = TSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3.0), metric="cosine", init="pca", random_state=seed)
        return np.asarray(tsne.fit_transform(matrix), dtype=np.float64)
    try:
        import umap
    except ImportError as exc:
        raise FailedPreconditionError("UMAP projections need umap-learn: pip install umap-learn") from exc
    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), metric="cosine", random_state=seed, n_jobs=1)
    return np.asarray(reducer.fit_transform(matrix), dtype=np.float64)


def _scatter(axes: Axes, coords: npt.NDArray[np.float64], labels: Sequence[str], title: str, legend: str) -> None:
    for position, label in enumerate(dict.fromkeys(labels)):
        rows = np.array([item == label for item in labels])
        axes.scatter(
            coords[rows, 0],
            coords[rows, 1],
            s=14,
            alpha=0.7,
            marker=_MARKERS[position % len(_MARKERS)],
            color=f"C{position % 10}",
            label=f"{label} ({int(rows.sum())})",
            linewidths=0,
        )
    axes.set_title(title, fontsize=11)
    axes.set_xlabel("component 1", fontsize=10)
    axes.set_ylabel("component 2", fontsize=10)
    axes.legend(title=legend, fontsize=9, title_fontsize=9, loc="best", markerscale=1.5, framealpha=0.85)
    axes.grid(alpha=0.25)


def projection_png(
    panels: Mapping[str, Groups],
    *,
    method: ProjectionMethod = "tsne",
    title: str = "",
    legend_title: str = "label",
    seed: int = 0,
) -> bytes:
    """Scatter plots of 2-D projections, one panel per entry, coloured by group.

    Each panel is projected on its own, so panels may hold vectors of different models (different
    spaces). Colour by dataset, by label (query / document) or by model by choosing the groups.

    Args:
        panels: Panel title -> groups (legend label -> ``(n, dim)`` vectors).
        method: ``"umap"`` or ``"tsne"``.
        title: Figure title.
        legend_title: What the colours mean, e.g. ``"label"``, ``"dataset"`` or ``"model"``.
        seed: Random state of the projections.

    Returns:
        The figure as PNG bytes.

    Raises:
        InvalidArgumentError: No panel, an empty panel, groups of different dimensions, or too few points.
    """
    if not panels:
        raise InvalidArgumentError("projection_png needs at least one panel")
    figure = _figure(6.2 * len(panels), 5.4)
    grid = figure.subplots(1, len(panels), squeeze=False)[0]
    for axes, (panel_title, groups) in zip(grid, panels.items(), strict=True):
        blocks = [np.asarray(v, dtype=np.float64) for v in groups.values() if len(v)]
        if not blocks:
            raise InvalidArgumentError(f"panel {panel_title!r} has no vectors")
        if len({block.shape[1] for block in blocks}) != 1:
            raise InvalidArgumentError(f"panel {panel_title!r} mixes vectors of different dimensions")
        labels = [label for label, v in groups.items() for _ in range(len(v))]
        coords = project_2d(np.concatenate(blocks), method, seed=seed)
        _scatter(axes, coords, labels, f"{panel_title} ({METHOD_TITLES[method]})", legend_title)
    if title:
        figure.suptitle(title, fontsize=13)
    return _png(figure)


def history_png(
    points: Sequence[MetricPoint],
    metrics: Sequence[str],
    *,
    x: HistoryAxis = "version",
    title: str = "Metric history",
) -> bytes:
    """Line plots of metrics across model versions or over time, one panel per metric.

    Each line is one series: a model name on one dataset split. With ``x="version"`` the x axis lists
    versions in semver order and each point is that version's latest value; with ``x="time"`` every
    recorded value is plotted at its time.

    Args:
        points: History points (e.g. ``MetricHistory.query(model_name=...)``).
        metrics: Metrics to plot, one panel each.
        x: ``"version"`` or ``"time"``.
        title: Figure title.

    Returns:
        The figure as PNG bytes.

    Raises:
        InvalidArgumentError: No metric asked for, or an unknown axis.
    """
    from rag_factory.models.embedding.versions import version_key

    if not metrics:
        raise InvalidArgumentError("history_png needs at least one metric")
    if x not in ("version", "time"):
        raise InvalidArgumentError(f"unknown x axis {x!r}; valid: time, version")
    columns = min(len(metrics), 2)
    rows = (len(metrics) + columns - 1) // columns
    figure = _figure(6.2 * columns, 4.2 * rows)
    grid = figure.subplots(rows, columns, squeeze=False).ravel()
    versions = sorted({p.version for p in points}, key=version_key)
    for axes, metric in zip(grid, metrics, strict=False):
        series: dict[str, list[MetricPoint]] = {}
        for point in points:
            if point.metric == metric:
                series.setdefault(f"{point.model_name} · {point.dataset}/{point.split}", []).append(point)
        for position, (label, items) in enumerate(sorted(series.items())):
            style = {"marker": _MARKERS[position % len(_MARKERS)], "color": f"C{position % 10}", "label": label}
            if x == "version":
                latest = {p.version: p.value for p in sorted(items, key=lambda p: p.recorded_at)}
                ordered = [v for v in versions if v in latest]
                axes.plot([versions.index(v) for v in ordered], [latest[v] for v in ordered], **style)
            else:
                items = sorted(items, key=lambda p: p.recorded_at)
                axes.plot([p.recorded_at for p in items], [p.value for p in items], **style)
        if x == "version":
            axes.set_xticks(range(len(versions)), versions, rotation=30, ha="right")
            axes.set_xlabel("model version", fontsize=10)
        else:
            axes.set_xlabel("evaluated at (UTC)", fontsize=10)
            axes.tick_params(axis="x", labelrotation=30)
        axes.set_ylabel(metric, fontsize=10)
        axes.set_title(metric, fontsize=11)
        axes.grid(alpha=0.3)
        if series:
            axes.legend(title="model · dataset", fontsize=8, title_fontsize=8, loc="best")
        else:
            axes.text(0.5, 0.5, "no history yet", ha="center", va="center", transform=axes.transAxes)
    for axes in grid[len(metrics) :]:
        axes.set_visible(False)
    figure.suptitle(title, fontsize=13)
    return _png(figure)


def per_query_png(
    values_a: Mapping[str, float], values_b: Mapping[str, float], *, metric: str, label_a: str, label_b: str
) -> bytes:
    """Per-query scatter of model B against model A, with the no-change diagonal.

    Points above the diagonal are queries B improved; below, queries it regressed.

    Raises:
        InvalidArgumentError: The two maps cover different queries.
    """
    if values_a.keys() != values_b.keys():
        raise InvalidArgumentError("per-query values of A and B must cover the same queries")
    ids = sorted(values_a)
    a = np.array([values_a[q] for q in ids])
    b = np.array([values_b[q] for q in ids])
    figure = _figure(6.2, 5.4)
    axes = figure.subplots()
    for mask, label, colour in ((b > a, "improved", "C2"), (b < a, "regressed", "C3"), (b == a, "unchanged", "C7")):
        axes.scatter(a[mask], b[mask], s=16, alpha=0.7, color=colour, label=f"{label} ({int(mask.sum())})")
    top = max(1.0, float(max(a.max(initial=0), b.max(initial=0))))
    axes.plot([0, top], [0, top], color="black", linewidth=0.8, linestyle="--", label="no change")
    axes.set_xlabel(f"{metric} — A: {label_a}", fontsize=10)
    axes.set_ylabel(f"{metric} — B: {label_b}", fontsize=10)
    axes.set_title(f"Per-query {metric}, B against A", fontsize=11)
    axes.legend(title="query", fontsize=9, title_fontsize=9, loc="lower right")
    axes.grid(alpha=0.3)
    return _png(figure)

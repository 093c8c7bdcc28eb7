"""Evaluate a model (registered id, alias or path) on a BEIR split with exact search, caching corpus vectors."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pluggy
from pydantic import BaseModel, ConfigDict, Field
from threadpoolctl import threadpool_limits

from rag_factory.data.beir import BeirDataset, _read_qrels, load_beir
from rag_factory.errors import DatasetError, InvalidArgumentError, describe_choices
from rag_factory.hooks.manager import build_plugin_manager
from rag_factory.models.embedding.loader import CustomModelLoader
from rag_factory.models.embedding.records import utcnow
from rag_factory.models.embedding.registry import ModelRegistry
from rag_factory.models.evaluation import embedding_space
from rag_factory.models.evaluation.corpus_vectors import cache_key
from rag_factory.models.evaluation.embedding_cache import DEFAULT_EMBEDDING_CACHE_DIR, CorpusEmbeddingCache
from rag_factory.models.evaluation.model_resolution import BackendChoice, ResolvedModel, resolve_model
from rag_factory.retrieval.exact_search import search
from rag_factory.retrieval.metrics import DEFAULT_METRICS, parse_metric, per_query

logger = logging.getLogger(__name__)

Stage = Literal["loading_model", "embedding_corpus", "embedding_queries", "searching", "scoring", "done"]
CacheStatus = Literal["hit", "miss", "refreshed", "disabled"]

CORPUS_CHUNK = 256
"""Documents embedded between two progress reports."""
SPACE_SAMPLE = 2000
"""At most this many documents enter the embedding-space metrics (they are O(n^2))."""


@dataclass(frozen=True)
class EvaluationProgress:
    """One progress report: ``done`` of ``total`` units of ``stage`` (documents, queries, or 1 step)."""

    stage: Stage
    done: int
    total: int
    message: str = ""


ProgressCallback = Callable[[EvaluationProgress], None]
"""Called from the evaluating thread; an exception it raises aborts the evaluation (use it to cancel)."""


class Timings(BaseModel):
    """Wall-clock seconds of each stage."""

    load_model_s: float = Field(description="Resolving and loading the model (0 on a loader cache hit).")
    corpus_embedding_s: float = Field(description="Embedding the corpus, or reading it from the cache.")
    query_embedding_s: float = Field(description="Embedding the split's queries.")
    search_s: float = Field(description="Exact search of every query over the corpus.")
    scoring_s: float = Field(description="Metrics, embedding-space metrics and custom metrics.")
    total_s: float = Field(description="The whole evaluation, dataset loading included.")


class DanglingQrels(BaseModel):
    """Judgements of the split that name ids missing from the dataset (dropped before scoring)."""

    judgements: int = Field(default=0, description="Judgements dropped.")
    unknown_queries: int = Field(default=0, description="Distinct query ids not in queries.jsonl.")
    unknown_documents: int = Field(default=0, description="Distinct document ids not in corpus.jsonl.")
    examples: list[str] = Field(default_factory=list, description="A few of the unknown ids.")


class EmbeddingSpaceSummary(BaseModel):
    """Geometry of the evaluated vectors; see :mod:`rag_factory.models.evaluation.embedding_space`."""

    isotropy: float = Field(description="Partition-function isotropy of documents (1 = isotropic).")
    uniformity: float = Field(description="Wang & Isola uniformity of documents (lower = more uniform).")
    alignment: float = Field(description="Wang & Isola alignment of queries and their best relevant document.")
    mean_cosine: float = Field(description="Mean pairwise cosine of documents (near 1 = collapsed).")
    effective_rank: float = Field(description="Roy & Vetterli effective rank of the document vectors.")
    query_document_silhouette: float = Field(
        description="Silhouette of the labels query/document (near 0: one shared region; high: a modality gap)."
    )
    documents_sampled: int = Field(description="Documents used (a fixed random sample of large corpora).")


class EvaluationReport(BaseModel):
    """What one evaluation measured, on what, with which backend, and how long it took."""

    model_config = ConfigDict(protected_namespaces=())

    model_ref: str = Field(description="The model as the caller named it.")
    model_id: str = Field(description="Registry id, or the resolved path of an unregistered model.")
    model_name: str = Field(description="Registry name, or the directory name.")
    model_version: str = Field(description="Semver of a registered model; '' for a path.")
    model_source: Literal["registry", "path"] = Field(description="Where the model came from.")
    backend: str = Field(description="Backend that ran: onnx, sentence_transformers, huggingface or pytorch.")
    precision: str = Field(description="fp32, fp16 or int8.")
    runtime: str = Field(
        default="", description="Engine that ran the weights, e.g. 'OpenVINO CPU' or 'CPUExecutionProvider'."
    )
    weights: str = Field(description="File name of the weights that ran, e.g. model_int8.onnx.")
    embedding_dim: int = Field(description="Vector dimension.")
    max_seq_length: int = Field(description="Token limit applied to every text.")
    dataset: str = Field(description="Dataset name (its directory name).")
    dataset_path: str = Field(description="Dataset directory.")
    dataset_hash: str = Field(description="sha256 of the dataset files (BeirDataset.content_hash).")
    split: str = Field(description="Evaluated qrels split.")
    n_queries: int = Field(description="Judged queries scored.")
    n_documents: int = Field(description="Corpus size searched.")
    top_k: int = Field(description="Documents retrieved per query.")
    metrics: dict[str, float] = Field(description="Mean of each retrieval metric over the queries.")
    per_query: dict[str, dict[str, float]] = Field(description="metric -> query id -> value.")
    custom_metrics: dict[str, float] = Field(default_factory=dict, description="Metrics contributed by plugins.")
    embedding_space: EmbeddingSpaceSummary | None = Field(description="Embedding-space metrics; None if too small.")
    corpus_cache: CacheStatus = Field(description="Whether corpus vectors came from the cache.")
    cache_path: str | None = Field(description="Folder of the cached corpus vectors.")
    documents_embedded: int = Field(description="Documents embedded by this run (0 on a cache hit).")
    dangling_qrels: DanglingQrels = Field(description="Judgements dropped because their ids are unknown.")
    warnings: list[str] = Field(default_factory=list, description="Things the reader should know.")
    timings: Timings = Field(description="Seconds per stage.")
    evaluated_at: datetime = Field(default_factory=utcnow, description="When the evaluation finished (UTC).")

    @property
    def label(self) -> str:
        """Short human name: ``name@version`` or the directory name."""
        return f"{self.model_name}@{self.model_version}" if self.model_version else self.model_name


@dataclass
class EvaluationResult:
    """A report plus what comparisons, error analysis and plots need: the run and the vectors."""

    report: EvaluationReport
    dataset: BeirDataset
    qrels: dict[str, dict[str, int]]
    run: dict[str, dict[str, float]]  # query id -> {doc id: score}, top_k per query
    query_ids: list[str]
    query_vectors: npt.NDArray[np.float32]  # (queries, dim)
    doc_ids: list[str]
    doc_vectors: npt.NDArray[np.float32]  # (documents, dim)


def metric_names(metrics: Sequence[str] = DEFAULT_METRICS, k_values: Sequence[int] = ()) -> list[str]:
    """The metric names to compute: ``metrics`` as given, plus each base metric at every k of ``k_values``.

    ``metric_names(["ndcg@10", "recall"], [1, 5])`` gives ``ndcg@10, recall, ndcg@1, ndcg@5, recall@1, recall@5``.

    Raises:
        InvalidArgumentError: An unknown metric, or a k that is not a positive integer.
    """
    for k in k_values:
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
    names: list[str] = []
    bases: list[str] = []
    for name in metrics:
        base, _ = parse_metric(name)
        names.append(name.strip().lower())
        if base not in bases:
            bases.append(base)
    names += [f"{base}@{k}" for base in bases for k in k_values]
    if not names:
        raise InvalidArgumentError("no metrics asked for, e.g. 'ndcg@10'")
    return list(dict.fromkeys(names))


def load_split(
    dataset_dir: str | Path, split: str, *, allow_dangling_qrels: bool = False
) -> tuple[BeirDataset, dict[str, dict[str, int]], DanglingQrels]:
    """Load a BEIR dataset and one split's judgements, counting judgements with unknown ids.

    Raises:
        DatasetError: Missing files, no qrels for ``split``, a split with no judged query, or dangling
            judgements while ``allow_dangling_qrels`` is False.
    """
    dataset = load_beir(dataset_dir, strict=False)
    qrels_file = dataset.path / "qrels" / f"{split}.tsv"
    if not qrels_file.is_file():
        raise DatasetError(
            f"dataset {dataset.name!r} has no qrels for split {split!r}; splits: {describe_choices(dataset.qrels)}"
        )
    raw = _read_qrels(qrels_file)
    unknown_queries = sorted(q for q in raw if q not in dataset.queries)
    unknown_docs = sorted({d for judged in raw.values() for d in judged if d not in dataset.corpus})
    dropped = sum(1 for q, judged in raw.items() for d in judged if q not in dataset.queries or d not in dataset.corpus)
    dangling = DanglingQrels(
        judgements=dropped,
        unknown_queries=len(unknown_queries),
        unknown_documents=len(unknown_docs),
        examples=[*unknown_queries[:3], *unknown_docs[:3]],
    )
    if dropped and not allow_dangling_qrels:
        raise DatasetError(
            f"qrels/{split}.tsv of {dataset.name!r} has {dropped} judgements naming ids not in the dataset "
            f"({len(unknown_queries)} unknown queries, {len(unknown_docs)} unknown documents, e.g. "
            f"{', '.join(dangling.examples)}); pass allow_dangling_qrels=True (--allow-dangling-qrels) "
            "to drop them and go on",
            dataset=dataset.name,
        )
    qrels = dataset.split(split)
    if not qrels:
        raise DatasetError(f"split {split!r} of {dataset.name!r} has no judged queries")
    return dataset, qrels, dangling


def _notify(callback: ProgressCallback | None, stage: Stage, done: int, total: int, message: str = "") -> None:
    if callback is not None:
        callback(EvaluationProgress(stage, done, total, message))


def _embed_corpus(
    resolved: ResolvedModel, texts: Sequence[str], on_progress: ProgressCallback | None
) -> npt.NDArray[np.float32]:
    model = resolved.model
    # Longest first across the whole corpus, so every chunk (and batch) pads little.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    vectors = np.empty((len(texts), model.embedding_dim), dtype=np.float32)
    _notify(on_progress, "embedding_corpus", 0, len(texts))
    for start in range(0, len(order), CORPUS_CHUNK):
        chunk = order[start : start + CORPUS_CHUNK]
        vectors[chunk] = model.encode([texts[i] for i in chunk])
        _notify(on_progress, "embedding_corpus", min(start + CORPUS_CHUNK, len(texts)), len(texts))
    return vectors


def summarise_space(
    query_vectors: npt.NDArray[np.float32],
    doc_vectors: npt.NDArray[np.float32],
    positives: Sequence[int],
    *,
    sample: int = SPACE_SAMPLE,
    seed: int = 0,
) -> EmbeddingSpaceSummary | None:
    """Embedding-space metrics of one evaluation.

    Args:
        query_vectors: ``(queries, dim)``.
        doc_vectors: ``(documents, dim)``.
        positives: For each query, the row in ``doc_vectors`` of its best relevant document.
        sample: Documents used at most (a fixed random sample beyond that).
        seed: Seed of the sample.

    Returns:
        The summary, or None with fewer than two queries or documents.
    """
    if len(query_vectors) < 2 or len(doc_vectors) < 2:
        return None
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(doc_vectors), size=sample, replace=False)) if len(doc_vectors) > sample else None
    docs = doc_vectors if rows is None else doc_vectors[rows]
    both = np.concatenate([query_vectors, docs])
    labels = ["query"] * len(query_vectors) + ["document"] * len(docs)
    # One BLAS thread: on 2 shared cores, threaded eigh/SVD of these small matrices was measured up to
    # 100x slower (6.8 s against 0.07 s) whenever another process was busy.
    with threadpool_limits(limits=1):
        return _summary(query_vectors, doc_vectors, docs, both, labels, positives)


def _summary(
    query_vectors: npt.NDArray[np.float32],
    doc_vectors: npt.NDArray[np.float32],
    docs: npt.NDArray[np.float32],
    both: npt.NDArray[np.float32],
    labels: list[str],
    positives: Sequence[int],
) -> EmbeddingSpaceSummary:
    return EmbeddingSpaceSummary(
        isotropy=embedding_space.isotropy(docs),
        uniformity=embedding_space.uniformity(docs),
        alignment=embedding_space.alignment(query_vectors, doc_vectors[np.asarray(positives)]),
        mean_cosine=embedding_space.mean_pairwise_cosine(docs),
        effective_rank=embedding_space.effective_rank(docs),
        query_document_silhouette=embedding_space.silhouette_score(both, labels),
        documents_sampled=len(docs),
    )


def collect_custom_metrics(
    plugin_manager: pluggy.PluginManager, model_id: str, values: Mapping[str, Sequence[float]], warnings: list[str]
) -> dict[str, float]:
    """Ask every ``rag_factory_custom_metrics`` plugin (context ``"evaluation"``) and merge the answers.

    Plugins registered later win on a name clash, as they do for every other hook. A plugin that
    raises, or returns a value that is not a finite number, is logged and noted in ``warnings``.
    """
    try:
        answers = plugin_manager.hook.rag_factory_custom_metrics(model_id=model_id, context="evaluation", values=values)
    except Exception as exc:
        logger.exception("a rag_factory_custom_metrics plugin failed")
        warnings.append(f"a custom-metrics plugin failed ({type(exc).__name__}: {exc}); its metrics are missing")
        return {}
    merged: dict[str, float] = {}
    for answer in reversed(answers):  # pluggy answers newest plugin first; apply oldest first
        for name, value in dict(answer or {}).items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                warnings.append(f"custom metric {name!r} ignored: {value!r} is not a finite number")
                continue
            merged[str(name)] = float(value)
    return merged


def evaluate_detailed(
    model_ref_or_path: str | Path,
    dataset_dir: str | Path,
    *,
    split: str = "test",
    registry: ModelRegistry | None = None,
    loader: CustomModelLoader | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    k_values: Sequence[int] = (),
    top_k: int = 100,
    backend: BackendChoice = "fastest",
    cache_dir: str | Path | None = DEFAULT_EMBEDDING_CACHE_DIR,
    refresh_cache: bool = False,
    on_progress: ProgressCallback | None = None,
    allow_dangling_qrels: bool = False,
    plugin_manager: pluggy.PluginManager | None = None,
) -> EvaluationResult:
    """Like :func:`evaluate`, and also return the run and the vectors (for comparisons and plots)."""
    started = time.perf_counter()
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0:
        raise InvalidArgumentError(f"top_k must be a positive integer, got {top_k!r}")
    names = metric_names(metrics, k_values)
    depth = max([top_k, *(k for _, k in map(parse_metric, names) if k is not None)])
    dataset, qrels, dangling = load_split(dataset_dir, split, allow_dangling_qrels=allow_dangling_qrels)
    warnings: list[str] = []
    if dangling.judgements:
        warnings.append(
            f"{dangling.judgements} judgements with unknown ids were dropped ({', '.join(dangling.examples)})"
        )
        logger.warning("%s: %s", dataset.name, warnings[-1])

    _notify(on_progress, "loading_model", 0, 1, str(model_ref_or_path))
    clock = time.perf_counter()
    resolved = resolve_model(
        model_ref_or_path, registry=registry, loader=loader or CustomModelLoader(), backend=backend
    )
    model = resolved.model
    load_s = time.perf_counter() - clock
    _notify(on_progress, "loading_model", 1, 1, f"{model.info.backend} {model.info.precision}")

    clock = time.perf_counter()
    doc_ids = list(dataset.corpus)
    dataset_hash = dataset.content_hash()
    key = cache_key(resolved, dataset.name, dataset_hash)
    cache = CorpusEmbeddingCache(cache_dir) if cache_dir is not None else None
    doc_vectors = cache.load(key, doc_ids, model.embedding_dim) if cache is not None and not refresh_cache else None
    status: CacheStatus = "disabled" if cache is None else "hit" if doc_vectors is not None else "miss"
    documents_embedded = 0
    if doc_vectors is None:
        doc_vectors = _embed_corpus(resolved, [dataset.corpus[d].as_text() for d in doc_ids], on_progress)
        documents_embedded = len(doc_ids)
        if cache is not None:
            cache.save(key, doc_ids, doc_vectors)
            status = "refreshed" if refresh_cache else "miss"
    else:
        _notify(on_progress, "embedding_corpus", len(doc_ids), len(doc_ids), "from cache")
    corpus_s = time.perf_counter() - clock

    clock = time.perf_counter()
    query_ids = list(qrels)
    _notify(on_progress, "embedding_queries", 0, len(query_ids))
    query_vectors = model.encode([dataset.queries[q] for q in query_ids])
    _notify(on_progress, "embedding_queries", len(query_ids), len(query_ids))
    query_s = time.perf_counter() - clock

    clock = time.perf_counter()
    _notify(on_progress, "searching", 0, 1)
    with threadpool_limits(limits=1):  # (queries, docs) blocks are small; see summarise_space
        run = search(query_vectors, doc_vectors, query_ids, doc_ids, top_k=depth)
    search_s = time.perf_counter() - clock

    clock = time.perf_counter()
    _notify(on_progress, "scoring", 0, 1)
    values = per_query(run, qrels, names)
    means = {name: float(np.mean(list(by_query.values()))) for name, by_query in values.items()}
    row_of = {doc: row for row, doc in enumerate(doc_ids)}
    positives = [row_of[max(qrels[q].items(), key=lambda item: (item[1], item[0]))[0]] for q in query_ids]
    space = summarise_space(query_vectors, doc_vectors, positives)
    manager = plugin_manager if plugin_manager is not None else build_plugin_manager()
    ordered = {name: [values[name][q] for q in query_ids] for name in names}
    custom = collect_custom_metrics(manager, resolved.model_id, ordered, warnings)
    scoring_s = time.perf_counter() - clock

    report = EvaluationReport(
        model_ref=str(model_ref_or_path),
        model_id=resolved.model_id,
        model_name=resolved.model_name,
        model_version=resolved.version,
        model_source=resolved.source,
        backend=model.info.backend,
        precision=model.info.precision,
        runtime=model.info.details.get("provider", model.info.device),
        weights=Path(model.info.source).name,
        embedding_dim=model.embedding_dim,
        max_seq_length=model.max_seq_length,
        dataset=dataset.name,
        dataset_path=str(dataset.path),
        dataset_hash=dataset_hash,
        split=split,
        n_queries=len(query_ids),
        n_documents=len(doc_ids),
        top_k=depth,
        metrics=means,
        per_query=values,
        custom_metrics=custom,
        embedding_space=space,
        corpus_cache=status,
        cache_path=str(cache.folder(key)) if cache is not None else None,
        documents_embedded=documents_embedded,
        dangling_qrels=dangling,
        warnings=warnings,
        timings=Timings(
            load_model_s=load_s,
            corpus_embedding_s=corpus_s,
            query_embedding_s=query_s,
            search_s=search_s,
            scoring_s=scoring_s,
            total_s=time.perf_counter() - started,
        ),
    )
    _notify(on_progress, "done", 1, 1)
    return EvaluationResult(
        report=report,
        dataset=dataset,
        qrels=qrels,
        run=run,
        query_ids=query_ids,
        query_vectors=query_vectors,
        doc_ids=doc_ids,
        doc_vectors=doc_vectors,
    )


def evaluate(
    model_ref_or_path: str | Path,
    dataset_dir: str | Path,
    *,
    split: str = "test",
    registry: ModelRegistry | None = None,
    loader: CustomModelLoader | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    k_values: Sequence[int] = (),
    top_k: int = 100,
    backend: BackendChoice = "fastest",
    cache_dir: str | Path | None = DEFAULT_EMBEDDING_CACHE_DIR,
    refresh_cache: bool = False,
    on_progress: ProgressCallback | None = None,
    allow_dangling_qrels: bool = False,
    plugin_manager: pluggy.PluginManager | None = None,
) -> EvaluationReport:
    """Evaluate a model on one split of a BEIR dataset with exact (brute-force) search.

    The corpus is embedded once per (model weights, dataset content, backend/precision) and cached on
    disk, so a re-run embeds only the queries.

    Args:
        model_ref_or_path: A registered id, ``name@version``, ``name@alias`` (e.g. ``minilm@production``),
            a model directory (ONNX, sentence-transformers or Hugging Face; detected), or a hub id
            with a local copy.
        dataset_dir: Directory in BEIR layout.
        split: qrels split to evaluate.
        registry: Registry for references; None evaluates paths and hub ids only.
        loader: Model loader (and cache); a new one if None.
        metrics: Metric names such as ``"ndcg@10"`` or ``"map"``; see ``retrieval_metrics.parse_metric``.
        k_values: Extra cut-offs: each base metric of ``metrics`` is also computed at each k.
        top_k: Documents retrieved per query (raised to the largest k asked for).
        backend: ``"fastest"`` (int8 ONNX where the model has it), ``"native"`` or ``"int8"``.
        cache_dir: Corpus-vector cache; None disables it.
        refresh_cache: Re-embed the corpus and overwrite the cache.
        on_progress: Called with an :class:`EvaluationProgress` as stages advance.
        allow_dangling_qrels: Drop judgements naming unknown ids instead of refusing the dataset.
        plugin_manager: Plugins asked for custom metrics; default: the built-ins and entry points.

    Returns:
        Metrics, per-query values, custom metrics, embedding-space metrics, the backend used, the
        dataset's content hash and timings.

    Raises:
        InvalidArgumentError: Bad metric name, a k or top_k that is not positive.
        DatasetError: Missing files, a split without qrels or judged queries, or dangling judgements
            without ``allow_dangling_qrels`` (the message says how many).
        ModelNotFoundError, AliasNotFoundError, UnknownFormatError: The model cannot be found or read.
        FailedPreconditionError: Cached corpus vectors do not fit the model (another dimension).
    """
    return evaluate_detailed(
        model_ref_or_path,
        dataset_dir,
        split=split,
        registry=registry,
        loader=loader,
        metrics=metrics,
        k_values=k_values,
        top_k=top_k,
        backend=backend,
        cache_dir=cache_dir,
        refresh_cache=refresh_cache,
        on_progress=on_progress,
        allow_dangling_qrels=allow_dangling_qrels,
        plugin_manager=plugin_manager,
    ).report


def registry_metric_name(report: EvaluationReport, metric: str) -> str:
    """The key an evaluation metric gets in the registry's metrics map: ``dataset/split/metric``."""
    return f"{report.dataset}/{report.split}/{metric}"


def record_evaluation(report: EvaluationReport, registry: ModelRegistry) -> int:
    """Store a registered model's evaluation in the metric history and in its registry metrics.

    Returns:
        Rows written to the history (0 for an unregistered model, which has no version to file it under).
    """
    from rag_factory.models.monitoring.metric_history import MetricHistory

    if report.model_source != "registry":
        return 0
    values = {**report.metrics, **report.custom_metrics}
    registry.update_metrics(report.model_id, {registry_metric_name(report, name): v for name, v in values.items()})
    history = MetricHistory.for_registry(registry)
    try:
        return history.record_report(report)
    finally:
        history.close()

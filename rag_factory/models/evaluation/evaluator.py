"""Evaluate a model (registered id, alias or path) on a BEIR split with exact search, caching corpus vectors."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Unpack

import numpy as np
from threadpoolctl import threadpool_limits

from rag_factory.errors import InvalidArgumentError
from rag_factory.hooks.manager import build_plugin_manager
from rag_factory.models.embedding.loader import CustomModelLoader
from rag_factory.models.evaluation.corpus_vectors import load_or_embed_corpus
from rag_factory.models.evaluation.custom_metrics import collect_custom_metrics
from rag_factory.models.evaluation.dataset_split import load_split
from rag_factory.models.evaluation.model_resolution import resolve_model
from rag_factory.models.evaluation.options import EvaluationKeywords, EvaluationOptions, metric_names
from rag_factory.models.evaluation.progress import notify
from rag_factory.models.evaluation.results import EvaluationReport, EvaluationResult, Timings
from rag_factory.models.evaluation.space_summary import summarise_space
from rag_factory.retrieval.exact_search import search
from rag_factory.retrieval.metrics import parse_metric, per_query

logger = logging.getLogger(__name__)


def evaluate_detailed(
    model_ref_or_path: str | Path,
    dataset_dir: str | Path,
    options: EvaluationOptions | None = None,
    **keywords: Unpack[EvaluationKeywords],
) -> EvaluationResult:
    """Like :func:`evaluate`, and also return the run and the vectors (for comparisons and plots)."""
    settings = replace(options or EvaluationOptions(), **keywords)
    started = time.perf_counter()
    top_k, on_progress = settings.top_k, settings.on_progress
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0:
        raise InvalidArgumentError(f"top_k must be a positive integer, got {top_k!r}")
    names = metric_names(settings.metrics, settings.k_values)
    depth = max([top_k, *(k for _, k in map(parse_metric, names) if k is not None)])
    dataset, qrels, dangling = load_split(
        dataset_dir, settings.split, allow_dangling_qrels=settings.allow_dangling_qrels
    )
    warnings: list[str] = []
    if dangling.judgements:
        warnings.append(
            f"{dangling.judgements} judgements with unknown ids were dropped ({', '.join(dangling.examples)})"
        )
        logger.warning("%s: %s", dataset.name, warnings[-1])

    notify(on_progress, "loading_model", 0, 1, str(model_ref_or_path))
    clock = time.perf_counter()
    resolved = resolve_model(
        model_ref_or_path,
        registry=settings.registry,
        loader=settings.loader or CustomModelLoader(),
        backend=settings.backend,
    )
    model = resolved.model
    load_s = time.perf_counter() - clock
    notify(on_progress, "loading_model", 1, 1, f"{model.info.backend} {model.info.precision}")

    clock = time.perf_counter()
    dataset_hash = dataset.content_hash()
    corpus = load_or_embed_corpus(
        resolved,
        dataset,
        dataset_hash,
        cache_dir=settings.cache_dir,
        refresh_cache=settings.refresh_cache,
        on_progress=on_progress,
    )
    doc_ids, doc_vectors = corpus.doc_ids, corpus.vectors
    corpus_s = time.perf_counter() - clock

    clock = time.perf_counter()
    query_ids = list(qrels)
    notify(on_progress, "embedding_queries", 0, len(query_ids))
    query_vectors = model.encode([dataset.queries[q] for q in query_ids])
    notify(on_progress, "embedding_queries", len(query_ids), len(query_ids))
    query_s = time.perf_counter() - clock

    clock = time.perf_counter()
    notify(on_progress, "searching", 0, 1)
    with threadpool_limits(limits=1):  # (queries, docs) blocks are small; see summarise_space
        run = search(query_vectors, doc_vectors, query_ids, doc_ids, top_k=depth)
    search_s = time.perf_counter() - clock

    clock = time.perf_counter()
    notify(on_progress, "scoring", 0, 1)
    values = per_query(run, qrels, names)
    means = {name: float(np.mean(list(by_query.values()))) for name, by_query in values.items()}
    row_of = {doc: row for row, doc in enumerate(doc_ids)}
    positives = [row_of[max(qrels[q].items(), key=lambda item: (item[1], item[0]))[0]] for q in query_ids]
    space = summarise_space(query_vectors, doc_vectors, positives)
    manager = settings.plugin_manager if settings.plugin_manager is not None else build_plugin_manager()
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
        split=settings.split,
        n_queries=len(query_ids),
        n_documents=len(doc_ids),
        top_k=depth,
        metrics=means,
        per_query=values,
        custom_metrics=custom,
        embedding_space=space,
        corpus_cache=corpus.status,
        cache_path=corpus.cache_path,
        documents_embedded=corpus.documents_embedded,
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
    notify(on_progress, "done", 1, 1)
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
    options: EvaluationOptions | None = None,
    **keywords: Unpack[EvaluationKeywords],
) -> EvaluationReport:
    """Evaluate a model on one split of a BEIR dataset with exact (brute-force) search.

    The corpus is embedded once per (model weights, dataset content, backend/precision) and cached on
    disk, so a re-run embeds only the queries.

    Args:
        model_ref_or_path: A registered id, ``name@version``, ``name@alias`` (e.g. ``minilm@production``),
            a model directory (ONNX, sentence-transformers or Hugging Face; detected), or a hub id
            with a local copy.
        dataset_dir: Directory in BEIR layout.
        options: Split, metrics, backend, cache, registry, loader, progress and plugins; see
            :class:`EvaluationOptions` (the defaults when None).
        **keywords: Fields of :class:`EvaluationOptions` (``split="dev"``, ``cache_dir=None``, ...), replacing
            those of ``options``.

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
    return evaluate_detailed(model_ref_or_path, dataset_dir, options, **keywords).report

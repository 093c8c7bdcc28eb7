"""What an evaluation returns: the report (metrics, backend, timings) and the run and vectors behind it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from rag_factory.data.beir import BeirDataset
from rag_factory.models.embedding.records import utcnow
from rag_factory.models.evaluation.dataset_split import DanglingQrels
from rag_factory.models.evaluation.embedding_cache import CacheStatus
from rag_factory.models.evaluation.space_summary import EmbeddingSpaceSummary


class Timings(BaseModel):
    """Wall-clock seconds of each stage."""

    load_model_s: float = Field(description="Resolving and loading the model (0 on a loader cache hit).")
    corpus_embedding_s: float = Field(description="Embedding the corpus, or reading it from the cache.")
    query_embedding_s: float = Field(description="Embedding the split's queries.")
    search_s: float = Field(description="Exact search of every query over the corpus.")
    scoring_s: float = Field(description="Metrics, embedding-space metrics and custom metrics.")
    total_s: float = Field(description="The whole evaluation, dataset loading included.")


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

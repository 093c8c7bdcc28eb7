"""What a fine-tuning run returns: metrics and paths, and what publishing the result needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from rag_factory.data.beir import BeirDataset
from rag_factory.models.embedding.records import ModelRecord
from rag_factory.models.training.config import FineTuneConfig
from rag_factory.models.training.precision import ResolvedPrecision
from rag_factory.statistics.paired import PairedComparison

if TYPE_CHECKING:
    from rag_factory.models.training.preparation import PreparedRun


@dataclass(frozen=True)
class RunInputs:
    """What a run trained: its config, data and base; registration records them as the result's lineage."""

    config: FineTuneConfig
    dataset_name: str
    dataset_sha256: str
    train_queries: int
    validation_queries: int
    base_path: Path
    base_record: ModelRecord | None  # None without a registry

    @classmethod
    def of(cls, run: PreparedRun) -> RunInputs:
        """The inputs of a prepared run."""
        return cls(
            config=run.config,
            dataset_name=run.data.name,
            dataset_sha256=run.data.source_hash,
            train_queries=len(run.train.query_ids()),
            validation_queries=len(run.validation.query_ids()),
            base_path=run.base_path,
            base_record=run.base_record,
        )


@dataclass(frozen=True)
class RunCorpusVectors:
    """The test corpus as the run embedded it with the base and with the result, for evaluation to reuse.

    One L2-normalised row per document of ``dataset.corpus``, in its order, from the model loaded as a
    ``SentenceTransformer`` at ``max_seq_length`` tokens in ``precision``.
    """

    dataset: BeirDataset
    base: npt.NDArray[np.float32]  # (documents, dim)
    fine_tuned: npt.NDArray[np.float32]  # (documents, dim)
    max_seq_length: int
    precision: ResolvedPrecision


@dataclass
class FineTuneResult:
    """Everything a run measured and produced."""

    output_dir: Path = field(metadata={"doc": "The sentence-transformers directory (with onnx/ when exported)."})
    strategy: str
    hyperparameters: dict[str, float]
    base_validation: dict[str, float]
    validation: dict[str, float]
    base_test: dict[str, float] | None
    test: dict[str, float] | None
    comparison: PairedComparison | None  # paired test of test nDCG@10, fine-tuned vs base
    epochs_trained: float
    train_rows: int
    train_seconds: float
    total_seconds: float
    model_size_mb: float
    latency_ms: float  # one batch of 32 queries on the training device
    model_id: str | None = None  # set once the result is registered
    model_ref: str | None = None
    search_trials: list[dict[str, float]] = field(default_factory=list)
    averaged_epochs: tuple[float, ...] = ()  # checkpoints averaged into the result; one: the best epoch alone
    inputs: RunInputs | None = field(default=None, repr=False)  # what registration records as lineage
    corpus_vectors: RunCorpusVectors | None = field(default=None, repr=False)  # None without a BEIR test split

    def weights_summary(self) -> str:
        """Where the result's weights came from, for people: an epoch, or the mean of several ("" if unknown)."""
        if len(self.averaged_epochs) > 1:
            return "the mean of epochs " + ", ".join(f"{e:g}" for e in self.averaged_epochs)
        if self.averaged_epochs:
            return f"epoch {self.averaged_epochs[0]:g}, the best on validation"
        return ""
